//! The person's own AI assistants ("agents"), which call the vault's MCP server at `/mcp`: who
//! they are ([`Agent`]), their stored registration, and the check of their access tokens.
//!
//! An agent's life: it registers itself without any invitation (RFC 7591, as MCP clients do;
//! `registration`), which gives it a client id and nothing else — an unapproved registration
//! can do nothing and is purged after [`REGISTRATION_LIFETIME`]. It then sends the person's
//! browser to the authorization endpoint with PKCE and `resource=<public url>/mcp`
//! (`authorize`); the person approves it on the consent page, choosing its scopes and which
//! record fields it may read, and only then is it approved. Its tokens name `/mcp` as their
//! audience, so a brand's token never passes here and an agent's never passes on the brand API.
//! Disconnecting it (Settings) removes the registration: its next call is refused.
//!
//! Every token check reads the agent's registration: tokens carry the registration's
//! *generation*, which every revocation bumps, so a revoked token is refused at once without a
//! list of token ids.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

pub mod authorize;
pub mod registration;

use super::OpenVault;
use super::deadlines::Deadlines;
use crate::crypto::jwt;
use crate::error::{AppError, TokenRefusal};
use crate::store::{Table, Tree};

pub use crate::domain::agents::AgentScope;

/// Where the MCP server answers, below the public URL: the resource agents' tokens are for.
pub const MCP_PATH: &str = "/mcp";
/// How long an agent's access token lives.
pub const AGENT_TOKEN_LIFETIME: Duration = Duration::hours(1);
/// How long a registration waits for the person's approval before it is purged.
pub const REGISTRATION_LIFETIME: Duration = Duration::hours(1);
/// How often at most an agent's last use is written (a busy assistant makes many calls a minute).
const TOUCH_EVERY: Duration = Duration::seconds(60);
/// Clock skew tolerated on a token's `iat`.
const SKEW_SECONDS: i64 = 60;

/// Agents' registrations, under a keyed hash of their client id.
pub(crate) const AGENTS: Table<AgentRecord> = Table::new(Tree::Agents, "agent");

/// An approved agent, as the MCP server sees it on each call: who it is and what the person let
/// it do. `fields` are the record paths (e.g. `contact.email`) it may read, and only with
/// [`AgentScope::RecordsRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub client_id: String,
    pub name: String,
    pub scopes: BTreeSet<AgentScope>,
    pub fields: Vec<String>,
}

impl Agent {
    pub fn has(&self, scope: AgentScope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the agent may read the record at `path`: it has the scope, and the person ticked
    /// that field.
    pub fn may_read(&self, path: &str) -> bool {
        self.has(AgentScope::RecordsRead) && self.fields.iter().any(|f| f == path)
    }
}

/// An approved assistant, as Settings lists it.
#[derive(Debug, Clone)]
pub struct ConnectedAgent {
    pub client_id: String,
    pub name: String,
    pub client_uri: Option<String>,
    pub scopes: BTreeSet<AgentScope>,
    pub fields: Vec<String>,
    pub approved_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// What the person approved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub(crate) scopes: BTreeSet<AgentScope>,
    pub(crate) fields: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) approved_at: OffsetDateTime,
}

/// The agent's refresh token (one chain per agent; a new approval starts a new chain).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshState {
    /// Hex SHA-256 of the refresh token that may be used next.
    pub(crate) current: String,
    /// Hex SHA-256 of the last few that were used: one of them coming back means the chain
    /// leaked (RFC 9700 §4.14.2), and the whole authorization is revoked.
    pub(crate) spent: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) expires_at: OffsetDateTime,
}

/// An agent's registration as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    pub(crate) client_id: String,
    pub(crate) client_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_uri: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    /// `authorization_code`, and `refresh_token` if it registered it.
    pub(crate) grant_types: Vec<String>,
    /// The scopes it registered for: the most it may ask for.
    pub(crate) scopes: BTreeSet<AgentScope>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) registered_at: OffsetDateTime,
    /// `None` until the person approves it; then what they approved.
    #[serde(default)]
    pub(crate) approval: Option<Approval>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub(crate) last_used_at: Option<OffsetDateTime>,
    /// Tokens carry it; every revocation bumps it, so that they all die at once.
    pub(crate) generation: u64,
    #[serde(default)]
    pub(crate) refresh: Option<RefreshState>,
}

impl AgentRecord {
    /// When an unapproved registration is purged (`None` once approved).
    pub(crate) fn purge_at(&self) -> Option<OffsetDateTime> {
        self.approval
            .is_none()
            .then_some(self.registered_at + REGISTRATION_LIFETIME)
    }

    fn agent(&self, approval: &Approval, granted: &BTreeSet<AgentScope>) -> Agent {
        Agent {
            client_id: self.client_id.clone(),
            name: self.client_name.clone(),
            scopes: approval.scopes.intersection(granted).copied().collect(),
            fields: approval.fields.clone(),
        }
    }
}

/// The claims of an agent's access token (RFC 9068 §2.2). `aud` is the MCP resource, never the
/// brand API; `vrm_generation` ties it to the registration's current generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentClaims {
    pub iss: String,
    pub aud: String,
    /// The agent's client id: it acts for the vault's one person, and no other subject exists.
    pub sub: String,
    pub client_id: String,
    pub jti: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub vrm_generation: u64,
}

/// Checks the claims of an agent token whose signature verified: issuer, audience (the MCP
/// resource), times against `now` (Unix seconds).
pub fn check_agent_claims(
    claims: &AgentClaims,
    issuer: &str,
    resource: &str,
    now: i64,
) -> Result<(), AppError> {
    if claims.iss != issuer {
        return Err(AppError::InvalidToken(TokenRefusal::NotForHere(format!(
            "issuer {}",
            claims.iss
        ))));
    }
    if claims.aud != resource {
        return Err(AppError::InvalidToken(TokenRefusal::NotForHere(format!(
            "audience {}",
            claims.aud
        ))));
    }
    if claims.exp <= now {
        return Err(AppError::InvalidToken(TokenRefusal::Expired));
    }
    let lifetime = claims.exp.checked_sub(claims.iat);
    if claims.iat > now.saturating_add(SKEW_SECONDS)
        || lifetime.is_none_or(|l| l > AGENT_TOKEN_LIFETIME.whole_seconds())
        || claims.sub != claims.client_id
    {
        return Err(AppError::InvalidToken(TokenRefusal::NotForHere(
            "issued in the future, for too long, or for another subject".into(),
        )));
    }
    Ok(())
}

/// Revokes every token of the assistants stored under `keys`, in `tx`: their generation moves
/// on and their refresh token goes. Their approval stays. For a restored vault
/// (`service::restored`), where a backup may bring back assistants disconnected since.
pub(crate) fn revoke_all_in(
    tx: &mut crate::store::Tx<'_>,
    keys: &[Vec<u8>],
) -> Result<(), AppError> {
    for key in keys {
        if let Some(mut record) = tx.read(&AGENTS, key)? {
            record.generation += 1;
            record.refresh = None;
            tx.write(&AGENTS, key, &record)?;
        }
    }
    Ok(())
}

/// What the agents feature keeps in memory: consents and codes in flight, the registration
/// budgets, when each agent's last use
/// was written, and when unapproved registrations expire.
#[derive(Debug)]
pub(crate) struct AgentState {
    pub(super) pending: Mutex<authorize::AgentPending>,
    pub(super) budgets: Mutex<registration::Budgets>,
    touched: Mutex<HashMap<String, OffsetDateTime>>,
    /// Unapproved registrations by purge time (client ids).
    pub(super) expiries: Deadlines<String>,
}

impl AgentState {
    /// Reads the registrations once, at unseal, to know when the unapproved ones expire.
    pub(in crate::service) fn load(
        store: &crate::store::Store,
        alarm: &super::deadlines::Alarm,
    ) -> AgentState {
        let mut due = Vec::new();
        for item in store.read_all(&AGENTS) {
            match item {
                Ok((_, record)) => {
                    if let Some(at) = record.purge_at() {
                        due.push((at, record.client_id));
                    }
                }
                Err(e) => alarm.read_error("agent registration", &e),
            }
        }
        AgentState {
            pending: Mutex::default(),
            budgets: Mutex::default(),
            touched: Mutex::default(),
            expiries: Deadlines::new(due),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, AppError> {
    mutex
        .lock()
        .map_err(|_| AppError::broken("agents lock poisoned"))
}

impl OpenVault {
    /// The resource agents' tokens are for (RFC 8707): the MCP server's URL.
    pub fn mcp_resource(&self) -> String {
        format!("{}{MCP_PATH}", self.issuer)
    }

    pub(crate) fn agent_key(&self, client_id: &str) -> [u8; 32] {
        self.index_key("agent", client_id)
    }

    /// The stored registration of `client_id`, approved or not.
    pub(crate) fn find_agent_record(
        &self,
        client_id: &str,
    ) -> Result<Option<AgentRecord>, AppError> {
        Ok(self.store().read(&AGENTS, &self.agent_key(client_id))?)
    }

    /// Every check of an agent's bearer token: signature (the vault's key, ES256, `at+jwt`),
    /// issuer, audience `/mcp`, times, and the registration behind it: still there, approved,
    /// and not revoked since the token was issued. The agent it returns has the scopes both the
    /// token and the current approval hold.
    pub fn verify_agent_token(&self, token: &str) -> Result<Agent, AppError> {
        let claims: AgentClaims = jwt::verify_es256(
            token,
            &self.jwks(),
            &[super::tokens::ACCESS_TOKEN_TYP, "application/at+jwt"],
        )
        .map_err(|e| AppError::InvalidToken(TokenRefusal::Unverifiable(e.to_string())))?;
        check_agent_claims(
            &claims,
            &self.issuer,
            &self.mcp_resource(),
            self.now().unix_timestamp(),
        )?;
        let record = self
            .find_agent_record(&claims.client_id)?
            .ok_or(AppError::InvalidToken(TokenRefusal::ClientRemoved))?;
        let Some(approval) = &record.approval else {
            return Err(AppError::InvalidToken(TokenRefusal::Revoked));
        };
        if record.generation != claims.vrm_generation {
            return Err(AppError::InvalidToken(TokenRefusal::Revoked));
        }
        let granted = crate::domain::agents::parse_scopes(Some(&claims.scope))
            .map_err(|e| AppError::InvalidToken(TokenRefusal::NotForHere(e)))?;
        Ok(record.agent(approval, &granted))
    }

    /// Notes that `client_id` was just used, for the "last use" the person sees in Settings.
    /// Written at most once a minute per agent, in the background: the call that used it does not
    /// wait, and a registration removed in the meantime is not brought back.
    pub fn touch_agent(self: &std::sync::Arc<Self>, client_id: &str) {
        let now = self.now();
        {
            let Ok(mut touched) = lock(&self.agents.touched) else {
                return;
            };
            if touched
                .get(client_id)
                .is_some_and(|at| now - *at < TOUCH_EVERY)
            {
                return;
            }
            touched.insert(client_id.to_owned(), now);
        }
        let vault = self.clone();
        let key = self.agent_key(client_id);
        tokio::spawn(async move {
            let written = vault
                .write(move |tx| {
                    if let Some(mut record) = tx.read(&AGENTS, &key)?
                        && record.approval.is_some()
                    {
                        record.last_used_at = Some(now);
                        tx.write(&AGENTS, &key, &record)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, "noting an assistant's last use");
            }
        });
    }

    /// Forgets when `client_id` was last touched (it was disconnected).
    fn forget_touch(&self, client_id: &str) {
        if let Ok(mut touched) = lock(&self.agents.touched) {
            touched.remove(client_id);
        }
    }

    /// The store keys of every assistant's registration.
    pub(crate) fn agent_keys(&self) -> Result<Vec<Vec<u8>>, AppError> {
        let mut keys = Vec::new();
        for item in self.store().iter(AGENTS.tree()) {
            keys.push(item?.0);
        }
        Ok(keys)
    }

    /// The approved assistants, for Settings, most recently approved first.
    pub fn list_agents(&self) -> Result<Vec<ConnectedAgent>, AppError> {
        let mut agents = Vec::new();
        for item in self.store().read_all(&AGENTS) {
            let (_, record) = item?;
            if let Some(approval) = record.approval {
                agents.push(ConnectedAgent {
                    client_id: record.client_id,
                    name: record.client_name,
                    client_uri: record.client_uri,
                    scopes: approval.scopes,
                    fields: approval.fields,
                    approved_at: approval.approved_at,
                    last_used_at: record.last_used_at,
                });
            }
        }
        agents.sort_by_key(|a| std::cmp::Reverse(a.approved_at));
        Ok(agents)
    }

    /// Disconnects an assistant: removes its registration, so that every token and refresh
    /// token it holds is refused from the next call on. Audited.
    pub async fn disconnect_agent(&self, client_id: &str) -> Result<(), AppError> {
        let key = self.agent_key(client_id);
        let target = client_id.to_owned();
        self.change(move |tx| {
            let Some(record) = tx.read(&AGENTS, &key)? else {
                return Err(AppError::NotFound("assistant"));
            };
            tx.remove(AGENTS.tree(), &key)?;
            let event = crate::domain::audit::Event::owner("agent.disconnected", Some(target))
                .with_detail(serde_json::json!({ "name": record.client_name }));
            Ok(((), event))
        })
        .await?;
        self.forget_touch(client_id);
        Ok(())
    }

    /// Purges the registrations nobody approved within [`REGISTRATION_LIFETIME`] (run by the
    /// background worker); returns when the next one is due.
    pub(crate) async fn purge_unapproved_agents(
        &self,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let due = self.agents.expiries.take_due(now);
        if !due.is_empty() {
            let keys: Vec<[u8; 32]> = due.iter().map(|(_, id)| self.agent_key(id)).collect();
            let purged = self
                .write(move |tx| {
                    for key in &keys {
                        // Only if still unapproved and expired: one approved since stays.
                        if tx
                            .read(&AGENTS, key)?
                            .is_some_and(|r| r.purge_at().is_some_and(|at| at <= now))
                        {
                            tx.remove(AGENTS.tree(), key)?;
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = purged {
                tracing::warn!(error = %e, "purging unapproved assistants");
                for (_, id) in due {
                    self.agents.expiries.insert(now + Duration::seconds(5), id);
                }
            }
        }
        self.agents.expiries.first_after(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;
    const ISSUER: &str = "https://vault.example";
    const RESOURCE: &str = "https://vault.example/mcp";

    fn claims(iat: i64, exp: i64) -> AgentClaims {
        AgentClaims {
            iss: ISSUER.into(),
            aud: RESOURCE.into(),
            sub: "agent-x".into(),
            client_id: "agent-x".into(),
            jti: "jti".into(),
            scope: "agent.records.read".into(),
            iat,
            exp,
            vrm_generation: 0,
        }
    }

    #[test]
    fn an_agent_token_is_for_the_mcp_resource_only_and_lives_an_hour_at_most() {
        let ok = |c: &AgentClaims| check_agent_claims(c, ISSUER, RESOURCE, NOW).is_ok();
        assert!(ok(&claims(NOW, NOW + 3600)));
        assert!(!ok(&claims(NOW, NOW + 3601)));
        assert!(!ok(&claims(NOW - 3600, NOW)));
        assert!(!ok(&claims(NOW + 61, NOW + 600)));
        let mut brand_api = claims(NOW, NOW + 600);
        brand_api.aud = format!("{ISSUER}/brand/v1");
        assert!(!ok(&brand_api));
        let mut other = claims(NOW, NOW + 600);
        other.sub = "someone-else".into();
        assert!(!ok(&other));
    }

    #[test]
    fn a_brand_token_does_not_decode_as_an_agent_token() {
        // A brand's claims lack `vrm_generation`; an agent's lack `vrm_agreement`: neither kind
        // can even be read as the other, whatever its audience says.
        let brand = serde_json::json!({
            "iss": ISSUER, "aud": RESOURCE, "sub": "p", "client_id": "b", "jti": "j",
            "scope": "intents:read", "iat": NOW, "exp": NOW + 60, "vrm_agreement": "a",
        });
        assert!(serde_json::from_value::<AgentClaims>(brand).is_err());
        let agent = serde_json::to_value(claims(NOW, NOW + 60)).unwrap();
        assert!(serde_json::from_value::<super::super::tokens::AccessClaims>(agent).is_err());
    }
}
