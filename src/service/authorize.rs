//! The authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636, RFC 9396): a brand asks, the
//! person decides on the consent page, the brand exchanges the code; and refresh tokens that
//! rotate (RFC 9700 §4.14) and die with their grant.
//!
//! Pending consents and codes live in memory: they last minutes, and a restart simply makes the
//! brand ask again. Refresh tokens live in the store, keyed by a keyed hash of the token.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

mod exchange;

use super::OpenVault;
use super::grants::GrantRequest;
use crate::crypto::{random_token, sha256};
use crate::domain::audit::Event;
use crate::domain::brands::{Brand, BrandStatus};
use crate::domain::consent_budget::{PendingSlot, make_room};
use crate::domain::grants::{
    AccessRequestDetail, AskedGrant, FieldSpec, GrantDecision, GrantOrigin, mask,
    parse_authorization_details,
};
use crate::domain::records::DataCategory;
use crate::error::{AppError, OAuthError};
use crate::store::{Table, Tree};

/// Refresh tokens, under a keyed hash of the token.
pub(crate) const REFRESH_TOKENS: Table<RefreshRecord> =
    Table::new(Tree::RefreshTokens, "refresh token");

/// The prefix of refresh tokens, which tells them from JWT access tokens at the revocation endpoint.
pub const REFRESH_TOKEN_PREFIX: &str = "vrmrt_";
/// How long the person has to decide on a consent request.
pub const CONSENT_LIFETIME: Duration = Duration::minutes(10);
/// How long an authorization code can be exchanged.
pub const CODE_LIFETIME: Duration = Duration::seconds(60);
/// How long a used code is remembered, so that replaying it is detected (and punished).
const CODE_MEMORY: Duration = Duration::minutes(10);

/// A brand's request waiting for the person's decision.
#[derive(Debug, Clone)]
pub struct Consent {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub asked: AskedGrant,
    pub created_at: OffsetDateTime,
    /// The address the request came from, and when it arrived among the pending ones, for
    /// the budgets (`domain::consent_budget`).
    from: IpAddr,
    arrival: u64,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    grant_id: String,
    redirect_uri: String,
    code_challenge: String,
    created_at: OffsetDateTime,
    used: bool,
}

/// Consents and codes in flight.
#[derive(Debug, Default)]
pub struct Pending {
    consents: HashMap<String, Consent>,
    /// The arrival number of the next consent request.
    arrivals: u64,
    codes: HashMap<[u8; 32], Code>,
}

impl Pending {
    fn prune(&mut self, now: OffsetDateTime) {
        self.consents
            .retain(|_, c| now < c.created_at + CONSENT_LIFETIME);
        self.codes.retain(|_, c| now < c.created_at + CODE_MEMORY);
    }
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 9396 §2,
/// RFC 8707 §2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub authorization_details: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
    /// RFC 9126 §4: a request pushed to the PAR endpoint, by its `request_uri`.
    pub request_uri: Option<String>,
}

/// An authorization request that passed every check, before it becomes a consent request.
#[derive(Debug)]
pub(crate) struct CheckedRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    asked: AskedGrant,
}

/// Why an authorization request failed, and whether the brand may be told by redirect.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: answer the browser, never redirect.
    NoRedirect(String),
    /// RFC 6749 §4.1.2.1: redirect back with the error.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl From<AppError> for AuthorizeError {
    fn from(e: AppError) -> AuthorizeError {
        AuthorizeError::NoRedirect(e.public_message())
    }
}

/// `redirect_uri` with the query parameters added.
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

impl AuthorizeError {
    /// Where to send the browser, or `None` when it must not be sent anywhere. `issuer` goes
    /// in as `iss` (RFC 9207), so the brand can tell which server answered.
    pub fn redirect(&self, issuer: &str) -> Option<String> {
        match self {
            AuthorizeError::NoRedirect(_) => None,
            AuthorizeError::Redirect {
                redirect_uri,
                error,
                description,
                state,
            } => {
                let mut params = vec![
                    ("error", *error),
                    ("error_description", description.as_str()),
                ];
                if let Some(state) = state {
                    params.push(("state", state));
                }
                params.push(("iss", issuer));
                Some(redirect_with(redirect_uri, &params))
            }
        }
    }
}

/// A field on the consent page.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentField {
    pub field: String,
    pub category: String,
    pub category_label: String,
    /// Whether the person has data there now.
    pub present: bool,
    /// A hint of the current value, never the value.
    pub masked_value: String,
}

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentView {
    pub consent: Consent,
    pub brand: Brand,
    pub fields: Vec<ConsentField>,
    pub expires_at: OffsetDateTime,
    pub decision: Result<GrantDecision, (String, String)>,
    pub expires_in: i64,
}

/// A refresh token as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RefreshRecord {
    grant_id: String,
    client_id: String,
    generation: u64,
    used: bool,
}

/// RFC 7636 §4.1: 43–128 characters of the unreserved set.
fn valid_pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn invalid_grant(description: impl Into<String>) -> OAuthError {
    OAuthError::new(400, "invalid_grant", description)
}

impl OpenVault {
    fn pending(&self) -> Result<std::sync::MutexGuard<'_, Pending>, AppError> {
        self.authorizations
            .lock()
            .map_err(|_| AppError::broken("authorizations lock poisoned"))
    }

    /// Checks an authorization request and opens a consent request for the person; returns its
    /// id. A request with a `request_uri` is the one the brand pushed (RFC 9126), taken once. A
    /// request that would overfill the budget of its client address or of its brand evicts the
    /// oldest pending request of that same bucket (`domain::consent_budget`).
    pub fn authorize(
        &self,
        mut params: AuthorizeParams,
        from: IpAddr,
    ) -> Result<String, AuthorizeError> {
        let checked = match params.request_uri.take() {
            Some(uri) => {
                let pushed = self.take_pushed(&uri, params.client_id.as_deref())?;
                self.check_authorization(pushed, true)?
            }
            None => self.check_authorization(params, false)?,
        };
        let CheckedRequest {
            client_id,
            redirect_uri,
            state,
            code_challenge,
            asked,
        } = checked;
        let id = random_token("").map_err(|e| AppError::internal("drawing random bytes", e))?;
        let now = self.now();
        let mut pending = self.pending()?;
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
            Consent {
                id: id.clone(),
                client_id,
                redirect_uri,
                state,
                code_challenge,
                asked,
                created_at: now,
                from,
                arrival,
            },
        );
        Ok(id)
    }

    /// Every check of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 9396, RFC 8707),
    /// for the authorization endpoint and for the PAR endpoint; `pushed` when it came through
    /// PAR (a client registered with `require_pushed_authorization_requests` needs that).
    pub(crate) fn check_authorization(
        &self,
        params: AuthorizeParams,
        pushed: bool,
    ) -> Result<CheckedRequest, AuthorizeError> {
        let client_id = params
            .client_id
            .ok_or_else(|| AuthorizeError::NoRedirect("client_id is missing".into()))?;
        let brand = self
            .find_brand(&client_id)?
            .ok_or_else(|| AuthorizeError::NoRedirect("unknown client_id".into()))?;
        let redirect_uri = params.redirect_uri.ok_or_else(|| {
            AuthorizeError::NoRedirect(
                "redirect_uri is missing: send one of the registered redirect URIs".into(),
            )
        })?;
        if !brand.redirect_uris.contains(&redirect_uri) {
            return Err(AuthorizeError::NoRedirect(
                "redirect_uri is not one this client registered (it must match exactly)".into(),
            ));
        }
        let state = params.state;
        let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
        };
        if brand.require_pushed_authorization_requests && !pushed {
            return Err(fail(
                "invalid_request",
                "this client registered require_pushed_authorization_requests: push the request \
                 to the pushed_authorization_request_endpoint first (RFC 9126)"
                    .into(),
            ));
        }
        if params.response_type.as_deref() != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "response_type must be code".into(),
            ));
        }
        if !brand.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(fail(
                "unauthorized_client",
                "this client did not register the authorization_code grant".into(),
            ));
        }
        if brand.status == BrandStatus::Suspended {
            return Err(fail(
                "access_denied",
                "this brand is suspended by the person".into(),
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
        let resource = self.resource();
        if params.resource.as_deref().is_some_and(|r| r != resource) {
            return Err(fail(
                "invalid_target",
                format!("resource must be {resource}"),
            ));
        }
        let details = params.authorization_details.ok_or_else(|| {
            fail(
                "invalid_authorization_details",
                "authorization_details is required: say which fields, for what and how long".into(),
            )
        })?;
        let asked = match parse_authorization_details(&details, &resource) {
            Ok(AccessRequestDetail::Ask(asked)) => asked,
            Ok(AccessRequestDetail::Existing { .. }) => {
                return Err(fail("invalid_authorization_details", "grant_id is for the client-credentials grant; ask with fields, actions and purpose here".into()));
            }
            Err(e) => return Err(fail("invalid_authorization_details", e)),
        };
        let agreement = match self.require_agreement(&brand) {
            Ok(agreement) => agreement,
            Err(e) => return Err(fail("unauthorized_client", e.description)),
        };
        // A request the person's terms cannot allow is answered now (RFC 9396 §5), naming the
        // rule, rather than shown to the person only to fail when they approve it.
        let categories = self.asked_categories(&asked)?;
        match self.check_grant_terms(&agreement, &asked.actions, categories, &asked.purpose) {
            Ok(_) => {}
            Err(AppError::GrantNotPermitted { rule, reason }) => {
                return Err(fail(
                    "invalid_authorization_details",
                    format!("the person's terms do not permit this request ({rule}): {reason}"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(CheckedRequest {
            client_id,
            redirect_uri,
            state,
            code_challenge,
            asked,
        })
    }

    fn find_consent(&self, id: &str) -> Result<Consent, AppError> {
        let now = self.now();
        let mut pending = self.pending()?;
        pending.prune(now);
        pending.consents.get(id).cloned().ok_or(AppError::NotFound(
            "consent request (it may have expired: ask the brand to start again)",
        ))
    }

    /// What the consent page shows: the brand, the fields with masked values, why, until when,
    /// and what the person's terms say.
    pub fn consent_view(&self, id: &str) -> Result<ConsentView, AppError> {
        let consent = self.find_consent(id)?;
        let brand = self.brand(&consent.client_id)?;
        let mut fields = Vec::new();
        let mut categories = Vec::new();
        for spec in &consent.asked.fields {
            match spec {
                FieldSpec::Path(path) => {
                    let record = match self.get_record(path) {
                        Ok(r) => Some(r),
                        Err(AppError::NotFound(_)) => None,
                        Err(e) => return Err(e),
                    };
                    let category = match &record {
                        Some(r) => DataCategory::find(&r.category).unwrap_or(DataCategory::OTHER),
                        None => DataCategory::resolve(path, None).unwrap_or(DataCategory::OTHER),
                    };
                    categories.push(category.id.to_owned());
                    fields.push(ConsentField {
                        field: path.as_str().to_owned(),
                        category: category.id.to_owned(),
                        category_label: category.label.to_owned(),
                        present: record.is_some(),
                        masked_value: record.map(|r| mask(&r.value)).unwrap_or_default(),
                    });
                }
                FieldSpec::Category(id) => {
                    let category = DataCategory::find(id).unwrap_or(DataCategory::OTHER);
                    categories.push(category.id.to_owned());
                    let mut masks = Vec::new();
                    let mut cursor = None;
                    loop {
                        let page =
                            self.list_records(cursor.as_deref(), super::records::MAX_PAGE)?;
                        masks.extend(
                            page.records
                                .iter()
                                .filter(|r| r.category == category.id)
                                .map(|r| mask(&r.value)),
                        );
                        match page.next_cursor {
                            Some(next) => cursor = Some(next),
                            None => break,
                        }
                    }
                    fields.push(ConsentField {
                        field: category.id.to_owned(),
                        category: category.id.to_owned(),
                        category_label: format!("every {}", category.label.to_lowercase()),
                        present: !masks.is_empty(),
                        masked_value: masks.into_iter().take(3).collect::<Vec<_>>().join(", "),
                    });
                }
            }
        }
        categories.sort();
        categories.dedup();
        let decision = match self.current_agreement(&brand)? {
            None => Err((
                "agreement".to_owned(),
                "this brand has no agreement on your current terms".to_owned(),
            )),
            Some(agreement) => match self.check_grant_terms(
                &agreement,
                &consent.asked.actions,
                categories,
                &consent.asked.purpose,
            ) {
                Ok(decision) => Ok(decision),
                Err(AppError::GrantNotPermitted { rule, reason }) => Err((rule, reason)),
                Err(e) => return Err(e),
            },
        };
        let now = self.now();
        Ok(ConsentView {
            expires_at: consent.created_at + consent.asked.lifetime,
            expires_in: (consent.created_at + CONSENT_LIFETIME - now)
                .whole_seconds()
                .max(0),
            consent,
            brand,
            fields,
            decision,
        })
    }

    /// The person's decision. Approving makes the grant (narrowed to `fields` and `expires_at` if
    /// given) and a code; either way the answer is where to send the browser.
    pub async fn decide_consent(
        &self,
        id: &str,
        approve: bool,
        fields: Option<Vec<String>>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<String, AppError> {
        let consent = self.find_consent(id)?;
        let mut state: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &consent.state {
            state.push(("state", s));
        }
        if !approve {
            self.pending()?.consents.remove(id);
            self.change({
                let client_id = consent.client_id.clone();
                move |_| Ok(((), Event::owner("consent.denied", Some(client_id))))
            })
            .await?;
            let mut params = vec![
                ("error", "access_denied"),
                ("error_description", "the person declined"),
            ];
            params.extend(state);
            params.push(("iss", &self.issuer));
            return Ok(redirect_with(&consent.redirect_uri, &params));
        }
        let asked_until = consent.created_at + consent.asked.lifetime;
        let granted_fields = match fields {
            None => consent.asked.fields.clone(),
            Some(fields) => {
                let narrowed = crate::domain::grants::parse_fields(&fields)
                    .map_err(|e| AppError::invalid("invalid_grant", e))?;
                if let Some(extra) = narrowed.iter().find(|f| !consent.asked.fields.contains(f)) {
                    return Err(AppError::invalid(
                        "invalid_grant",
                        format!(
                            "{} was not asked for: you can only remove fields",
                            extra.as_str()
                        ),
                    ));
                }
                narrowed
            }
        };
        let until = match expires_at {
            None => asked_until,
            Some(at) if at <= asked_until => at,
            Some(_) => {
                return Err(AppError::invalid(
                    "invalid_grant",
                    "you can only shorten how long the brand asked for",
                ));
            }
        };
        // Taken out while the grant is made, so two approvals cannot both make one; put back if
        // making it fails, so the person can still change the answer or deny.
        let Some(taken) = self.pending()?.consents.remove(id) else {
            return Err(AppError::NotFound("consent request"));
        };
        let made = self
            .create_grant(GrantRequest {
                client_id: consent.client_id.clone(),
                fields: granted_fields,
                actions: consent.asked.actions.clone(),
                purpose: consent.asked.purpose.clone(),
                expires_at: until,
                max_uses: None,
                origin: GrantOrigin::Consent,
            })
            .await;
        let grant = match made {
            Ok(grant) => grant,
            Err(e) => {
                self.pending()?.consents.insert(id.to_owned(), taken);
                return Err(e);
            }
        };
        let code =
            random_token("vrmac_").map_err(|e| AppError::internal("drawing random bytes", e))?;
        let now = self.now();
        {
            let mut pending = self.pending()?;
            pending.prune(now);
            pending.codes.insert(
                sha256(code.as_bytes()),
                Code {
                    client_id: consent.client_id,
                    grant_id: grant.id,
                    redirect_uri: consent.redirect_uri.clone(),
                    code_challenge: consent.code_challenge,
                    created_at: now,
                    used: false,
                },
            );
        }
        let mut params = vec![("code", code.as_str())];
        params.extend(state);
        // RFC 9207: the issuer, so a brand talking to several servers knows which answered.
        params.push(("iss", &self.issuer));
        Ok(redirect_with(&consent.redirect_uri, &params))
    }
}
