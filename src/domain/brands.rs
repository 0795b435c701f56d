//! Brands, the invitations that let them register, and their agreements to the person's terms.
//!
//! Pure: registration metadata (RFC 7591) is validated here, agreement events are chained here
//! with a hash function the caller passes, and the receipt document is built here. Storage,
//! signatures and the clock belong to the service.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// The scopes a brand can hold through the client-credentials grant, with what each allows.
pub const BRAND_SCOPES: &[(&str, &str)] = &[
    ("intents:read", "receive the person's intents"),
    ("offers:write", "answer intents with offers"),
    ("agreements:read", "read its own agreement receipts"),
];

/// Grant types a brand may register for.
pub const GRANT_TYPES: &[&str] = &["client_credentials", "authorization_code", "refresh_token"];
/// Most redirect URIs one brand may register.
const MAX_REDIRECT_URIS: usize = 5;

const MAX_NAME_CHARS: usize = 100;
const MAX_URI_CHARS: usize = 500;
const MAX_CONTACTS: usize = 5;

/// How a brand proves who it is at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the client id and the secret the vault issued (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// A JWT signed with a key the brand registered (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 2] = [AuthMethod::ClientSecretBasic, AuthMethod::PrivateKeyJwt];

    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    fn parse(text: &str) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// Parses a space-separated scope string (RFC 6749 §3.3) against `allowed`; the result keeps
/// `allowed`'s order and has no duplicates.
pub fn parse_scope(text: &str, allowed: &[String]) -> Result<Vec<String>, String> {
    let asked: BTreeSet<&str> = text.split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(unknown) = asked.iter().find(|s| !allowed.iter().any(|a| a == *s)) {
        return Err(format!(
            "scope \"{unknown}\" is not available; choose from: {}",
            allowed.join(" ")
        ));
    }
    Ok(allowed
        .iter()
        .filter(|a| asked.contains(a.as_str()))
        .cloned()
        .collect())
}

pub fn all_brand_scopes() -> Vec<String> {
    BRAND_SCOPES.iter().map(|(s, _)| (*s).to_owned()).collect()
}

/// Client metadata as a brand sends it to the registration endpoint (RFC 7591 §2). Unknown
/// members are ignored, as §2 requires.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub contacts: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub scope: Option<String>,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    /// RFC 9126 §6: the client's authorization requests must be pushed (PAR) first.
    pub require_pushed_authorization_requests: Option<bool>,
    /// RFC 9449 §5.2: every access token of this client must be DPoP-bound.
    pub dpop_bound_access_tokens: Option<bool>,
}

/// Metadata that passed [`ClientMetadata::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidMetadata {
    pub client_name: String,
    pub client_uri: Option<String>,
    pub contacts: Vec<String>,
    pub auth_method: AuthMethod,
    pub grant_types: Vec<String>,
    pub scope: Vec<String>,
    pub jwks: Option<Value>,
    pub redirect_uris: Vec<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub require_pushed_authorization_requests: bool,
    pub dpop_bound_access_tokens: bool,
}

/// A redirect URI a brand may register (RFC 6749 §3.1.2, RFC 9700 §2.1): absolute, no fragment,
/// https, or plain http only on the loopback interface (for brands developing locally).
fn check_redirect_uri(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text)
        .map_err(|e| format!("redirect_uris: \"{text}\" is not a URL ({e})"))?;
    if url.fragment().is_some() {
        return Err(format!(
            "redirect_uris: \"{text}\" must not have a fragment"
        ));
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "redirect_uris: \"{text}\" must be https (plain http only on 127.0.0.1, [::1] or localhost)"
        )),
    }
}

fn short_text(name: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{name} must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{name} may have at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{name} must not contain control characters"));
    }
    Ok(())
}

impl ClientMetadata {
    /// Checks the metadata; the message of an error names the member at fault. `check_jwks`
    /// checks a key set (cryptography is not the domain's: the caller passes it in).
    pub fn validate(
        self,
        check_jwks: impl Fn(&Value) -> Result<(), String>,
    ) -> Result<ValidMetadata, String> {
        let client_name = self
            .client_name
            .ok_or("client_name is required: it is how the person will know you")?;
        short_text("client_name", &client_name, MAX_NAME_CHARS)?;
        if let Some(uri) = &self.client_uri {
            short_text("client_uri", uri, MAX_URI_CHARS)?;
            if !(uri.starts_with("https://") || uri.starts_with("http://")) {
                return Err("client_uri must be an http(s) URL".into());
            }
        }
        let contacts = self.contacts.unwrap_or_default();
        if contacts.len() > MAX_CONTACTS {
            return Err(format!(
                "contacts may list at most {MAX_CONTACTS} addresses"
            ));
        }
        for contact in &contacts {
            short_text("contacts", contact, MAX_NAME_CHARS)?;
        }
        let auth_method = match self.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(text) => AuthMethod::parse(text).ok_or_else(|| {
                format!(
                    "token_endpoint_auth_method \"{text}\" is not supported; use client_secret_basic \
                     or private_key_jwt"
                )
            })?,
        };
        let grant_types = self
            .grant_types
            .unwrap_or_else(|| vec!["client_credentials".to_owned()]);
        if grant_types.is_empty() {
            return Err("grant_types must not be empty".into());
        }
        if let Some(bad) = grant_types
            .iter()
            .find(|g| !GRANT_TYPES.contains(&g.as_str()))
        {
            return Err(format!(
                "grant_types \"{bad}\" is not supported; use client_credentials, authorization_code or refresh_token"
            ));
        }
        let code_flow = grant_types.iter().any(|g| g == "authorization_code");
        if grant_types.iter().any(|g| g == "refresh_token") && !code_flow {
            return Err("grant_types refresh_token needs authorization_code".into());
        }
        let expected_response: &[&str] = if code_flow { &["code"] } else { &[] };
        if let Some(types) = &self.response_types
            && !types.is_empty()
            && types
                .iter()
                .map(String::as_str)
                .ne(expected_response.iter().copied())
        {
            return Err(format!(
                "response_types must be {expected_response:?} for these grant_types"
            ));
        }
        let redirect_uris = self.redirect_uris.unwrap_or_default();
        if code_flow && redirect_uris.is_empty() {
            return Err("redirect_uris is required with the authorization_code grant".into());
        }
        if !code_flow && !redirect_uris.is_empty() {
            return Err("redirect_uris is only used with the authorization_code grant".into());
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(format!(
                "redirect_uris may list at most {MAX_REDIRECT_URIS} URIs"
            ));
        }
        for uri in &redirect_uris {
            short_text("redirect_uris", uri, MAX_URI_CHARS)?;
            check_redirect_uri(uri)?;
        }
        let scope = match &self.scope {
            None => all_brand_scopes(),
            Some(text) => parse_scope(text, &all_brand_scopes())?,
        };
        if self.jwks_uri.is_some() {
            return Err(
                "jwks_uri is not supported: register your public keys inline in jwks".into(),
            );
        }
        let jwks = match (auth_method, self.jwks) {
            (AuthMethod::PrivateKeyJwt, None) => {
                return Err(
                    "private_key_jwt needs jwks: the public keys your assertions are signed with"
                        .into(),
                );
            }
            (AuthMethod::PrivateKeyJwt, Some(jwks)) => {
                check_jwks(&jwks)?;
                Some(jwks)
            }
            (AuthMethod::ClientSecretBasic, Some(_)) => {
                return Err(
                    "jwks is only used with token_endpoint_auth_method private_key_jwt".into(),
                );
            }
            (AuthMethod::ClientSecretBasic, None) => None,
        };
        for (name, value) in [
            ("software_id", &self.software_id),
            ("software_version", &self.software_version),
        ] {
            if let Some(value) = value {
                short_text(name, value, MAX_NAME_CHARS)?;
            }
        }
        Ok(ValidMetadata {
            client_name,
            client_uri: self.client_uri,
            contacts,
            auth_method,
            grant_types,
            scope,
            jwks,
            redirect_uris,
            software_id: self.software_id,
            software_version: self.software_version,
            require_pushed_authorization_requests: self
                .require_pushed_authorization_requests
                .unwrap_or(false),
            dpop_bound_access_tokens: self.dpop_bound_access_tokens.unwrap_or(false),
        })
    }
}

/// Whether a brand may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrandStatus {
    Active,
    /// Set by the owner: every token and call of the brand is refused until resumed.
    Suspended,
}

/// A registered brand, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Brand {
    pub client_id: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    pub contacts: Vec<String>,
    pub auth_method: AuthMethod,
    /// Hex SHA-256 of the client secret (a 256-bit random value, so a plain hash is enough).
    pub secret_hash: Option<String>,
    pub jwks: Option<Value>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scope: Vec<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    /// RFC 9126 §6: authorization requests must come through PAR.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.2: tokens only with a DPoP proof.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    pub status: BrandStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// The invitation it registered with.
    pub invitation_id: String,
    /// The brand's pairwise pseudonym for the person.
    pub pseudonym: String,
    /// Its latest agreement, if any.
    pub agreement_id: Option<String>,
    /// Suspended by the vault because it was restored from a backup: the relationship waits for
    /// the person to review and resume it (a backup may predate a deletion the brand was told
    /// of). Cleared when resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_after_restore: bool,
}

/// An invitation to register: an initial access token (RFC 7591 §3) the owner hands to a brand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_uses: u32,
    pub uses: u32,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Active,
    Spent,
    Expired,
}

impl Invitation {
    pub fn status(&self, now: OffsetDateTime) -> InvitationStatus {
        if self.uses >= self.max_uses {
            InvitationStatus::Spent
        } else if now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Active
        }
    }
}

/// What happened to an agreement, in the receipt's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementEventKind {
    /// The vault offered these terms (when they were published).
    Proffered,
    /// The brand accepted them.
    Accepted,
    /// The brand withdrew.
    Withdrawn,
    /// The person ended it.
    Terminated,
}

/// One link of an agreement's event chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreementEvent {
    #[serde(rename = "type")]
    pub kind: AgreementEventKind,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The previous event's hash; the first event's is [`crate::domain::audit::GENESIS_HASH`].
    pub prev: String,
    /// Hex SHA-256 over this event's RFC 8785 form without `hash`.
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatus {
    Accepted,
    Withdrawn,
    Terminated,
}

/// A brand's acceptance of one terms version, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub id: String,
    pub client_id: String,
    pub brand_name: String,
    pub pseudonym: String,
    pub terms_version: u64,
    pub terms_hash: String,
    pub basis: String,
    pub basis_iri: String,
    pub purposes: Vec<String>,
    pub data_categories: Vec<String>,
    /// `xsd:duration`, when the terms limit how long the brand may keep what it receives.
    pub retention: Option<String>,
    pub events: Vec<AgreementEvent>,
    pub status: AgreementStatus,
    /// The signed receipt of the latest event, exactly as served.
    pub receipt: String,
}

impl Agreement {
    /// Appends an event to the chain and moves the status along with it.
    pub fn push_event(
        &mut self,
        kind: AgreementEventKind,
        at: OffsetDateTime,
        canonical_hash: impl Fn(&Value) -> String,
    ) {
        let prev = self.events.last().map_or_else(
            || crate::domain::audit::GENESIS_HASH.to_owned(),
            |e| e.hash.clone(),
        );
        let mut event = AgreementEvent {
            kind,
            at,
            prev,
            hash: String::new(),
        };
        event.hash = canonical_hash(&event_body(&event));
        self.events.push(event);
        self.status = match kind {
            AgreementEventKind::Proffered | AgreementEventKind::Accepted => {
                AgreementStatus::Accepted
            }
            AgreementEventKind::Withdrawn => AgreementStatus::Withdrawn,
            AgreementEventKind::Terminated => AgreementStatus::Terminated,
        };
    }

    /// Whether the agreement covers new deliveries: accepted, and on the terms now in force.
    pub fn is_current(&self, current_terms_hash: &str) -> bool {
        self.status == AgreementStatus::Accepted && self.terms_hash == current_terms_hash
    }

    pub fn ended_at(&self) -> Option<OffsetDateTime> {
        match self.status {
            AgreementStatus::Accepted => None,
            _ => self.events.last().map(|e| e.at),
        }
    }

    /// The receipt document the vault signs (DESIGN §5): both parties, the terms by hash and
    /// basis, what they cover, and the event chain. Its RFC 8785 form is what the signature covers.
    pub fn receipt_document(&self, issuer: &str) -> Value {
        serde_json::json!({
            "version": 1,
            "agreement_id": self.id,
            "issuer": issuer,
            "terms": {
                "hash": self.terms_hash,
                "version": self.terms_version,
                "basis": self.basis,
                "basis_iri": self.basis_iri,
                "uri": format!("{issuer}/brand/v1/terms"),
            },
            "parties": {
                "person": self.pseudonym,
                "brand": self.client_id,
                "brand_name": self.brand_name,
            },
            "purposes": self.purposes,
            "data_categories": self.data_categories,
            "retention": self.retention,
            "events": self.events,
            "status": self.status,
        })
    }
}

/// An event as hashed: everything but its own hash.
fn event_body(event: &AgreementEvent) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("hash");
    }
    value
}

/// Checks an agreement's event chain with the same hash function that built it.
pub fn verify_events(events: &[AgreementEvent], canonical_hash: impl Fn(&Value) -> String) -> bool {
    let mut prev = crate::domain::audit::GENESIS_HASH.to_owned();
    for event in events {
        if event.prev != prev || event.hash != canonical_hash(&event_body(event)) {
            return false;
        }
        prev = event.hash.clone();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok_jwks(_: &Value) -> Result<(), String> {
        Ok(())
    }

    fn meta(value: Value) -> ClientMetadata {
        serde_json::from_value(value).unwrap_or_default()
    }

    #[test]
    fn minimal_registration_gets_defaults() {
        let valid = meta(json!({"client_name": "Bistro", "unknown_member": 1}))
            .validate(ok_jwks)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(valid.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(valid.grant_types, vec!["client_credentials"]);
        let code = meta(json!({"client_name": "B", "grant_types": ["authorization_code", "refresh_token"],
                               "redirect_uris": ["https://b.example/cb", "http://127.0.0.1:9/cb"], "response_types": ["code"]}))
            .validate(ok_jwks)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(code.redirect_uris.len(), 2);
        assert_eq!(valid.scope, all_brand_scopes());
    }

    #[test]
    fn bad_metadata_names_the_member() {
        let cases = [
            (json!({}), "client_name"),
            (json!({"client_name": " "}), "client_name"),
            (
                json!({"client_name": "B", "token_endpoint_auth_method": "none"}),
                "token_endpoint_auth_method",
            ),
            (
                json!({"client_name": "B", "grant_types": ["password"]}),
                "grant_types",
            ),
            (
                json!({"client_name": "B", "token_endpoint_auth_method": "private_key_jwt"}),
                "jwks",
            ),
            (
                json!({"client_name": "B", "jwks_uri": "https://b/jwks"}),
                "jwks_uri",
            ),
            (
                json!({"client_name": "B", "scope": "intents:read admin"}),
                "admin",
            ),
            (
                json!({"client_name": "B", "response_types": ["code"]}),
                "response_types",
            ),
            (
                json!({"client_name": "B", "client_uri": "javascript:alert(1)"}),
                "client_uri",
            ),
        ];
        for (body, member) in cases {
            let error = meta(body.clone())
                .validate(ok_jwks)
                .err()
                .unwrap_or_default();
            assert!(error.contains(member), "{body} → {error}");
        }
    }

    #[test]
    fn scope_parsing_is_exact() {
        let allowed = all_brand_scopes();
        assert_eq!(
            parse_scope("offers:write  intents:read offers:write", &allowed),
            Ok(vec!["intents:read".to_owned(), "offers:write".to_owned()])
        );
        assert_eq!(
            parse_scope("agreements:read intents:read", &allowed),
            Ok(vec![
                "intents:read".to_owned(),
                "agreements:read".to_owned()
            ])
        );
        assert!(parse_scope("intents:READ", &allowed).is_err());
        assert_eq!(parse_scope("", &allowed), Ok(vec![]));
    }

    fn hash(value: &Value) -> String {
        // Any deterministic function does for the chain's logic.
        format!(
            "{:x}",
            value.to_string().len() * 7919
                + value.to_string().bytes().map(usize::from).sum::<usize>()
        )
    }

    #[test]
    fn events_chain_and_move_the_status() {
        let mut agreement = Agreement {
            id: "a".into(),
            client_id: "c".into(),
            brand_name: "B".into(),
            pseudonym: "p".into(),
            terms_version: 1,
            terms_hash: "sha256:1".into(),
            basis: "SD-BASE".into(),
            basis_iri: "iri".into(),
            purposes: vec![],
            data_categories: vec![],
            retention: None,
            events: vec![],
            status: AgreementStatus::Accepted,
            receipt: String::new(),
        };
        let t = OffsetDateTime::UNIX_EPOCH;
        agreement.push_event(AgreementEventKind::Proffered, t, hash);
        agreement.push_event(AgreementEventKind::Accepted, t, hash);
        assert!(agreement.is_current("sha256:1"));
        assert!(!agreement.is_current("sha256:2"));
        agreement.push_event(AgreementEventKind::Withdrawn, t, hash);
        assert_eq!(agreement.status, AgreementStatus::Withdrawn);
        assert!(!agreement.is_current("sha256:1"));
        assert!(verify_events(&agreement.events, hash));
        assert_eq!(agreement.events[1].prev, agreement.events[0].hash);
        let mut tampered = agreement.events.clone();
        tampered[1].kind = AgreementEventKind::Terminated;
        assert!(!verify_events(&tampered, hash));
    }

    #[test]
    fn invitation_status() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let mut inv = Invitation {
            id: "i".into(),
            token_hash: String::new(),
            created_at: t,
            expires_at: t + time::Duration::hours(1),
            max_uses: 2,
            uses: 1,
            note: None,
        };
        assert_eq!(inv.status(t), InvitationStatus::Active);
        assert_eq!(
            inv.status(t + time::Duration::hours(1)),
            InvitationStatus::Expired
        );
        inv.uses = 2;
        assert_eq!(inv.status(t), InvitationStatus::Spent);
    }
}
