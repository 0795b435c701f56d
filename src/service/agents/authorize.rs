//! An assistant's authorization: the authorization-code flow with PKCE (S256 only) for the
//! resource `<public url>/mcp` (RFC 8707), the person's approval on the consent page, the code
//! exchange, refresh tokens that rotate (RFC 9700 §4.14), and revocation (RFC 7009).
//!
//! Consents and codes live in memory, as the brands' do: they last minutes, and a restart makes
//! the assistant ask again. The approval and the refresh token live in the registration. Every
//! revocation bumps the registration's generation, which every token carries: revoking one token
//! of an assistant revokes all of them (RFC 7009 §2.1 lets a server revoke related tokens), and
//! the assistant must be approved again.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{AGENT_TOKEN_LIFETIME, AGENTS, AgentClaims, AgentRecord, Approval, RefreshState};
use crate::crypto::{constant_time_eq, random_array, random_token, sha256};
use crate::domain::agents::{AgentScope, parse_scopes, redirect_matches, scope_text};
use crate::domain::audit::Event;
use crate::domain::consent_budget::{PendingSlot, make_room};
use crate::domain::records::RecordPath;
use crate::error::{AppError, OAuthError};
use crate::service::OpenVault;
use crate::service::authorize::{AuthorizeError, AuthorizeParams, redirect_with};

/// How long the person has to decide.
pub const CONSENT_LIFETIME: Duration = Duration::minutes(10);
/// How long a code can be exchanged.
pub const CODE_LIFETIME: Duration = Duration::seconds(60);
/// How long a used code is remembered, to detect its replay.
const CODE_MEMORY: Duration = Duration::minutes(10);
/// How long a refresh token lives unused; each use rotates it and starts a new period.
pub const REFRESH_LIFETIME: Duration = Duration::days(30);
/// The prefix of an assistant's refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "vrmart_";
/// Spent refresh tokens remembered per assistant, to recognise a replay.
const SPENT_KEPT: usize = 8;
/// The most record fields one approval may name.
pub const MAX_FIELDS: usize = 64;

/// An assistant's authorization request waiting for the person.
#[derive(Debug, Clone)]
pub struct AgentConsent {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    code_challenge: String,
    /// What it asks for: the person may untick some.
    pub scopes: BTreeSet<AgentScope>,
    pub created_at: OffsetDateTime,
    /// The address it came from and its arrival number, for the budgets
    /// (`domain::consent_budget`, the brands' own).
    from: IpAddr,
    arrival: u64,
}

#[derive(Debug, Clone)]
struct AgentCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    generation: u64,
    scopes: BTreeSet<AgentScope>,
    created_at: OffsetDateTime,
    used: bool,
}

/// Consents and codes in flight.
#[derive(Debug, Default)]
pub(crate) struct AgentPending {
    consents: HashMap<String, AgentConsent>,
    /// The arrival number of the next consent request.
    arrivals: u64,
    codes: HashMap<[u8; 32], AgentCode>,
}

impl AgentPending {
    fn prune(&mut self, now: OffsetDateTime) {
        self.consents
            .retain(|_, c| now < c.created_at + CONSENT_LIFETIME);
        self.codes.retain(|_, c| now < c.created_at + CODE_MEMORY);
    }
}

/// A field on the assistant's consent page: a record the person has. The page labels it with
/// the profile's words.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentConsentField {
    /// The record path, e.g. `contact.email`.
    pub path: String,
    pub category: String,
    /// A hint of the value, never the value.
    pub masked_value: String,
}

/// What the consent page shows for an assistant.
#[derive(Debug, Clone)]
pub struct AgentConsentView {
    pub consent: AgentConsent,
    pub client_name: String,
    pub client_uri: Option<String>,
    /// Whether the person approved this assistant before (this would replace that approval).
    pub approved_before: Option<Approval>,
    pub fields: Vec<AgentConsentField>,
    pub expires_in: i64,
}

/// A token issued to an assistant.
#[derive(Debug)]
pub struct AgentTokens {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
    pub refresh_token: Option<String>,
}

fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new(400, "invalid_grant", description)
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// RFC 7636 §4.1: 43–128 characters of the unreserved set.
fn valid_pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl OpenVault {
    fn agent_pending(&self) -> Result<std::sync::MutexGuard<'_, AgentPending>, AppError> {
        super::lock(&self.agents.pending)
    }

    /// The registration of `client_id` if it can still take part in a flow: present, and not
    /// an unapproved one past its time (the purge may not have run yet).
    pub(crate) fn live_agent(&self, client_id: &str) -> Result<Option<AgentRecord>, AppError> {
        let now = self.now();
        Ok(self
            .find_agent_record(client_id)?
            .filter(|r| r.purge_at().is_none_or(|at| at > now)))
    }

    /// Checks an assistant's authorization request and opens a consent request; returns its id.
    /// A request that would overfill the budget of its client address or of its assistant
    /// evicts the oldest pending request of that same bucket, as the brands' do
    /// (`domain::consent_budget`): nobody can push out another assistant's request.
    pub fn authorize_agent(
        &self,
        params: AuthorizeParams,
        from: IpAddr,
    ) -> Result<String, AuthorizeError> {
        let client_id = params.client_id.unwrap_or_default();
        let record = self
            .live_agent(&client_id)?
            .ok_or_else(|| AuthorizeError::NoRedirect("unknown client_id".into()))?;
        let redirect_uri = params.redirect_uri.ok_or_else(|| {
            AuthorizeError::NoRedirect(
                "redirect_uri is missing: send one of the registered redirect URIs".into(),
            )
        })?;
        if !record
            .redirect_uris
            .iter()
            .any(|r| redirect_matches(r, &redirect_uri))
        {
            return Err(AuthorizeError::NoRedirect(
                "redirect_uri is not one this client registered".into(),
            ));
        }
        let state = params.state;
        let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "response_type must be code".into(),
            ));
        }
        let Some(code_challenge) = params.code_challenge else {
            return Err(fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256".into(),
            ));
        };
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256".into(),
            ));
        }
        if code_challenge.len() != 43 || !valid_pkce_text(&code_challenge) {
            return Err(fail(
                "invalid_request",
                "code_challenge must be the base64url SHA-256 of the verifier (43 characters)"
                    .into(),
            ));
        }
        let resource = self.mcp_resource();
        if params.resource.as_deref().is_some_and(|r| r != resource) {
            return Err(fail(
                "invalid_target",
                format!("an assistant's resource is {resource}"),
            ));
        }
        if params.authorization_details.is_some() {
            return Err(fail(
                "invalid_request",
                "an assistant asks with scope, not authorization_details".into(),
            ));
        }
        let scopes = parse_scopes(params.scope.as_deref()).map_err(|e| fail("invalid_scope", e))?;
        if let Some(extra) = scopes.iter().find(|s| !record.scopes.contains(s)) {
            return Err(fail(
                "invalid_scope",
                format!("this client did not register the scope {extra}"),
            ));
        }
        let id = random_token("").map_err(|e| AppError::internal("drawing random bytes", e))?;
        let now = self.now();
        let mut pending = self.agent_pending()?;
        pending.prune(now);
        let evict: Vec<String> = {
            let slots: Vec<PendingSlot<'_>> = pending
                .consents
                .values()
                .map(|c| PendingSlot {
                    id: &c.id,
                    brand: &c.client_id,
                    address: c.from,
                    arrival: c.arrival,
                })
                .collect();
            make_room(&slots, &client_id, from)
                .into_iter()
                .map(str::to_owned)
                .collect()
        };
        for id in evict {
            pending.consents.remove(&id);
        }
        pending.arrivals += 1;
        let arrival = pending.arrivals;
        pending.consents.insert(
            id.clone(),
            AgentConsent {
                id: id.clone(),
                client_id,
                redirect_uri,
                state,
                code_challenge,
                scopes,
                created_at: now,
                from,
                arrival,
            },
        );
        Ok(id)
    }

    fn find_agent_consent(&self, id: &str) -> Result<AgentConsent, AppError> {
        let now = self.now();
        let mut pending = self.agent_pending()?;
        pending.prune(now);
        pending.consents.get(id).cloned().ok_or(AppError::NotFound(
            "consent request (it may have expired: ask your assistant to connect again)",
        ))
    }

    /// What the consent page shows: the assistant, what it asks to do, and the person's
    /// records to choose from (masked).
    pub fn agent_consent_view(&self, id: &str) -> Result<AgentConsentView, AppError> {
        let consent = self.find_agent_consent(id)?;
        let record = self
            .live_agent(&consent.client_id)?
            .ok_or(AppError::NotFound("assistant"))?;
        let mut fields = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_records(cursor.as_deref(), crate::service::records::MAX_PAGE)?;
            fields.extend(page.records.iter().map(|r| AgentConsentField {
                path: r.path.as_str().to_owned(),
                category: r.category.clone(),
                masked_value: crate::domain::grants::mask(&r.value),
            }));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        fields.sort_by(|a, b| a.path.cmp(&b.path));
        let now = self.now();
        Ok(AgentConsentView {
            expires_in: (consent.created_at + CONSENT_LIFETIME - now)
                .whole_seconds()
                .max(0),
            consent,
            client_name: record.client_name,
            client_uri: record.client_uri,
            approved_before: record.approval,
            fields,
        })
    }

    /// The person's decision on an assistant. Approving stores what they chose (`scopes`, at
    /// most what it asked; `fields`, the records it may read) and ends any earlier approval's
    /// tokens; either way the answer is where to send the browser.
    pub async fn decide_agent_consent(
        &self,
        id: &str,
        approve: bool,
        scopes: Option<Vec<String>>,
        fields: Vec<String>,
    ) -> Result<String, AppError> {
        let consent = self.find_agent_consent(id)?;
        let mut state: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &consent.state {
            state.push(("state", s));
        }
        if !approve {
            self.agent_pending()?.consents.remove(id);
            let mut params = vec![
                ("error", "access_denied"),
                ("error_description", "the person declined"),
            ];
            params.extend(state);
            params.push(("iss", &self.issuer));
            return Ok(redirect_with(&consent.redirect_uri, &params));
        }
        let scopes = match scopes {
            None => consent.scopes.clone(),
            Some(names) => {
                let mut chosen = BTreeSet::new();
                for name in names {
                    let scope = AgentScope::parse(&name)
                        .filter(|s| consent.scopes.contains(s))
                        .ok_or_else(|| {
                            AppError::invalid_at(
                                "invalid_scope",
                                "scopes",
                                format!("{name} was not asked for: you can only remove scopes"),
                            )
                        })?;
                    chosen.insert(scope);
                }
                chosen
            }
        };
        if scopes.is_empty() {
            return Err(AppError::invalid_at(
                "invalid_scope",
                "scopes",
                "choose at least one thing the assistant may do, or say no",
            ));
        }
        if fields.len() > MAX_FIELDS {
            return Err(AppError::invalid_at(
                "invalid_value",
                "fields",
                format!("at most {MAX_FIELDS} fields"),
            ));
        }
        let mut paths = Vec::new();
        for field in &fields {
            let path = RecordPath::parse(field).map_err(|_| {
                AppError::invalid_at(
                    "invalid_path",
                    "fields",
                    format!("{field} is not a record path"),
                )
            })?;
            if !paths.contains(&path.as_str().to_owned()) {
                paths.push(path.as_str().to_owned());
            }
        }
        let name = self
            .find_agent_record(&consent.client_id)?
            .map(|r| r.client_name)
            .unwrap_or_default();
        let Some(taken) = self.agent_pending()?.consents.remove(id) else {
            return Err(AppError::NotFound("consent request"));
        };
        let now = self.now();
        let key = self.agent_key(&consent.client_id);
        let approval = Approval {
            scopes: scopes.clone(),
            fields: paths.clone(),
            approved_at: now,
        };
        let event = Event::owner("agent.approved", Some(consent.client_id.clone())).with_detail(
            serde_json::json!({
                "scope": scope_text(&scopes),
                "fields": paths,
                "name": name,
            }),
        );
        let approved = self
            .change(move |tx| {
                let Some(mut record) = tx.read(&AGENTS, &key)? else {
                    return Err(AppError::NotFound("assistant"));
                };
                if record.purge_at().is_some_and(|at| at <= now) {
                    return Err(AppError::NotFound("assistant"));
                }
                record.approval = Some(approval);
                record.generation += 1;
                record.refresh = None;
                let generation = record.generation;
                tx.write(&AGENTS, &key, &record)?;
                Ok((generation, event))
            })
            .await;
        let generation = match approved {
            Ok(generation) => generation,
            Err(e) => {
                if !matches!(e, AppError::NotFound(_)) {
                    self.agent_pending()?.consents.insert(id.to_owned(), taken);
                }
                return Err(e);
            }
        };
        let code =
            random_token("vrmac_").map_err(|e| AppError::internal("drawing random bytes", e))?;
        {
            let mut pending = self.agent_pending()?;
            pending.prune(now);
            pending.codes.insert(
                sha256(code.as_bytes()),
                AgentCode {
                    client_id: consent.client_id,
                    redirect_uri: consent.redirect_uri.clone(),
                    code_challenge: consent.code_challenge,
                    generation,
                    scopes,
                    created_at: now,
                    used: false,
                },
            );
        }
        let mut params = vec![("code", code.as_str())];
        params.extend(state);
        params.push(("iss", &self.issuer));
        Ok(redirect_with(&consent.redirect_uri, &params))
    }

    /// Checks the `resource` of a token request (RFC 8707 §2.2): absent, or the MCP resource.
    fn check_agent_resource(&self, resource: Option<&str>) -> Result<(), OAuthError> {
        let expected = self.mcp_resource();
        match resource {
            Some(r) if r != expected => Err(OAuthError::new(
                400,
                "invalid_target",
                format!("an assistant's resource is {expected}"),
            )),
            _ => Ok(()),
        }
    }

    /// The authorization-code grant for an assistant (RFC 6749 §4.1.3, RFC 7636 §4.6).
    pub async fn exchange_agent_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        resource: Option<&str>,
    ) -> Result<AgentTokens, OAuthError> {
        self.check_agent_resource(resource)?;
        let now = self.now();
        let found = {
            let mut pending = self.agent_pending()?;
            pending.prune(now);
            match pending.codes.get_mut(&sha256(code.as_bytes())) {
                Some(c) if c.client_id == client_id => {
                    let before = c.clone();
                    c.used = true;
                    Some(before)
                }
                _ => None,
            }
        };
        let Some(found) = found else {
            return Err(invalid_grant("unknown or expired authorization code"));
        };
        if found.used {
            // RFC 6749 §4.1.2: a code used twice revokes what it gave.
            self.revoke_agent(client_id, "agent.code_replayed").await?;
            return Err(invalid_grant(
                "this code was already used; the tokens it gave are revoked",
            ));
        }
        if now >= found.created_at + CODE_LIFETIME {
            return Err(invalid_grant("the authorization code has expired"));
        }
        if redirect_uri != Some(found.redirect_uri.as_str()) {
            return Err(invalid_grant(
                "redirect_uri must be the one of the authorization request",
            ));
        }
        let verifier = verifier
            .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
        let challenge = data_encoding::BASE64URL_NOPAD.encode(&sha256(verifier.as_bytes()));
        if !valid_pkce_text(verifier)
            || !constant_time_eq(challenge.as_bytes(), found.code_challenge.as_bytes())
        {
            return Err(invalid_grant(
                "the code_verifier does not match the code_challenge",
            ));
        }
        let record = self
            .live_agent(client_id)?
            .filter(|r| r.approval.is_some() && r.generation == found.generation)
            .ok_or_else(|| invalid_grant("the person disconnected this assistant"))?;
        let refresh = record.grant_types.iter().any(|g| g == "refresh_token");
        self.mint_agent_tokens(&record, &found.scopes, refresh, None)
            .await
    }

    /// The refresh grant for an assistant: rotates the refresh token; a spent one coming back
    /// revokes everything (RFC 9700 §4.14.2).
    pub async fn refresh_agent(
        &self,
        client_id: &str,
        refresh_token: &str,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<AgentTokens, OAuthError> {
        self.check_agent_resource(resource)?;
        let now = self.now();
        let record = self
            .live_agent(client_id)?
            .ok_or_else(|| invalid_grant("the person disconnected this assistant"))?;
        let (Some(approval), Some(state)) = (&record.approval, &record.refresh) else {
            return Err(invalid_grant("this refresh token was revoked"));
        };
        let presented = hex(&sha256(refresh_token.as_bytes()));
        if !constant_time_eq(presented.as_bytes(), state.current.as_bytes()) {
            if state.spent.iter().any(|s| s == &presented) {
                self.revoke_agent(client_id, "agent.refresh_token.replayed")
                    .await?;
                return Err(invalid_grant(
                    "this refresh token was already used; every token of this assistant is revoked",
                ));
            }
            return Err(invalid_grant("unknown refresh token"));
        }
        if now >= state.expires_at {
            return Err(invalid_grant("the refresh token has expired"));
        }
        let scopes = match scope {
            None => approval.scopes.clone(),
            Some(text) => {
                let asked = parse_scopes(Some(text))
                    .map_err(|e| OAuthError::new(400, "invalid_scope", e))?;
                if asked.iter().any(|s| !approval.scopes.contains(s)) {
                    return Err(OAuthError::new(
                        400,
                        "invalid_scope",
                        "a refreshed token can only have scopes the person approved",
                    ));
                }
                asked
            }
        };
        self.mint_agent_tokens(&record, &scopes, true, Some(presented))
            .await
    }

    /// Signs an access token for `record` and, with `refresh`, a new refresh token; `spending`
    /// is the refresh token this replaces. Written only if the registration is still the same
    /// generation and (when spending) the spent token is still its current one, so two
    /// concurrent refreshes cannot both succeed.
    async fn mint_agent_tokens(
        &self,
        record: &AgentRecord,
        scopes: &BTreeSet<AgentScope>,
        refresh: bool,
        spending: Option<String>,
    ) -> Result<AgentTokens, OAuthError> {
        let now = self.now();
        let jti = data_encoding::BASE32_NOPAD
            .encode(
                &random_array::<15>().map_err(|e| AppError::internal("drawing random bytes", e))?,
            )
            .to_lowercase();
        let lifetime = AGENT_TOKEN_LIFETIME.whole_seconds();
        let claims = AgentClaims {
            iss: self.issuer.to_string(),
            aud: self.mcp_resource(),
            sub: record.client_id.clone(),
            client_id: record.client_id.clone(),
            jti,
            scope: scope_text(scopes),
            iat: now.unix_timestamp(),
            exp: now.unix_timestamp() + lifetime,
            vrm_generation: record.generation,
        };
        let access_token = self
            .key_ring()
            .active
            .sign_jwt(crate::service::tokens::ACCESS_TOKEN_TYP, &claims)
            .map_err(|e| AppError::internal("signing a token", e))?;
        let refresh_token = if refresh {
            Some(
                random_token(REFRESH_TOKEN_PREFIX)
                    .map_err(|e| AppError::internal("drawing random bytes", e))?,
            )
        } else {
            None
        };
        let key = self.agent_key(&record.client_id);
        let generation = record.generation;
        let new_hash = refresh_token.as_deref().map(|t| hex(&sha256(t.as_bytes())));
        self.write(move |tx| {
            let Some(mut stored) = tx.read(&AGENTS, &key)? else {
                return Err(AppError::NotFound("assistant"));
            };
            if stored.generation != generation || stored.approval.is_none() {
                return Err(AppError::NotFound("assistant"));
            }
            let mut spent = stored
                .refresh
                .as_ref()
                .map(|r| r.spent.clone())
                .unwrap_or_default();
            if let Some(spending) = spending {
                if stored.refresh.as_ref().map(|r| r.current.as_str()) != Some(spending.as_str()) {
                    return Err(AppError::NotFound("refresh token"));
                }
                spent.push(spending);
                if spent.len() > SPENT_KEPT {
                    spent.remove(0);
                }
            }
            stored.refresh = new_hash.map(|current| RefreshState {
                current,
                spent,
                expires_at: now + REFRESH_LIFETIME,
            });
            tx.write(&AGENTS, &key, &stored)?;
            Ok(())
        })
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => invalid_grant("this grant was revoked or used meanwhile"),
            other => other.into(),
        })?;
        Ok(AgentTokens {
            access_token,
            expires_in: lifetime,
            scope: claims.scope,
            refresh_token,
        })
    }

    /// RFC 7009 for an assistant: `token` (an access or refresh token of `client_id`) and every
    /// other token of the same assistant are revoked. A token that is not one of its live ones
    /// is ignored (§2.2: the answer is the same either way).
    pub async fn revoke_agent_token(&self, client_id: &str, token: &str) -> Result<(), AppError> {
        let Some(record) = self.find_agent_record(client_id)? else {
            return Ok(());
        };
        let ours = if token.starts_with(REFRESH_TOKEN_PREFIX) {
            let presented = hex(&sha256(token.as_bytes()));
            record
                .refresh
                .as_ref()
                .is_some_and(|r| constant_time_eq(r.current.as_bytes(), presented.as_bytes()))
        } else {
            self.verify_agent_token(token)
                .is_ok_and(|agent| agent.client_id == client_id)
        };
        if ours {
            self.revoke_agent(client_id, "agent.token.revoked").await?;
        }
        Ok(())
    }

    /// Revokes every token of `client_id`: bumps the generation and drops the refresh token.
    /// The registration and its approval stay (Settings still lists it, to disconnect); the
    /// assistant gets new tokens only through the consent page again. Audited as `action`.
    pub(crate) async fn revoke_agent(
        &self,
        client_id: &str,
        action: &'static str,
    ) -> Result<(), AppError> {
        let key = self.agent_key(client_id);
        let target = client_id.to_owned();
        let revoked = self
            .change(move |tx| {
                let Some(mut record) = tx.read(&AGENTS, &key)? else {
                    return Err(AppError::NotFound("assistant"));
                };
                record.generation += 1;
                record.refresh = None;
                tx.write(&AGENTS, &key, &record)?;
                let event = Event {
                    target: Some(target),
                    ..Event::system(action)
                };
                Ok(((), event))
            })
            .await;
        match revoked {
            Err(AppError::NotFound(_)) => Ok(()),
            other => other,
        }
    }
}
