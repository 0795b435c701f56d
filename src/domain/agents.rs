//! The person's own AI assistants ("agents"), which reach the vault over MCP at `/mcp`: their
//! scopes, and the rules their registration must meet. Pure: no I/O, no clock.
//!
//! An agent is not a brand. A brand is another party that the person lets in on the person's
//! terms; an agent acts for the person, with scopes of its own (`agent.*`, never a brand scope),
//! and only after the person approved it on the consent page. The two never share a token:
//! their tokens name different audiences (`/brand/v1`, `/mcp`).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What an agent may do. A closed set: the MCP server checks one of these per tool.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum AgentScope {
    /// Read the record fields the person ticked on the consent page (and only those).
    #[serde(rename = "agent.records.read")]
    RecordsRead,
    /// Read the person's intents ("wishes").
    #[serde(rename = "agent.intents.read")]
    IntentsRead,
    /// Make and withdraw intents for the person.
    #[serde(rename = "agent.intents.write")]
    IntentsWrite,
    /// Read the offers brands made on the person's intents.
    #[serde(rename = "agent.offers.read")]
    OffersRead,
    /// Decline offers for the person.
    #[serde(rename = "agent.offers.decline")]
    OffersDecline,
    /// Propose to the person which offers to accept (the person decides).
    #[serde(rename = "agent.offers.propose")]
    OffersPropose,
}

impl AgentScope {
    /// Every agent scope, in the order the consent page lists them.
    pub const ALL: [AgentScope; 6] = [
        AgentScope::RecordsRead,
        AgentScope::IntentsRead,
        AgentScope::IntentsWrite,
        AgentScope::OffersRead,
        AgentScope::OffersDecline,
        AgentScope::OffersPropose,
    ];

    /// The scope's name on the wire (`scope` parameters, tokens, metadata).
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentScope::RecordsRead => "agent.records.read",
            AgentScope::IntentsRead => "agent.intents.read",
            AgentScope::IntentsWrite => "agent.intents.write",
            AgentScope::OffersRead => "agent.offers.read",
            AgentScope::OffersDecline => "agent.offers.decline",
            AgentScope::OffersPropose => "agent.offers.propose",
        }
    }

    /// The scope named `text`, if it is an agent scope.
    pub fn parse(text: &str) -> Option<AgentScope> {
        AgentScope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What the scope lets an assistant do, in the words the person reads on the consent page
    /// and in Settings.
    pub const fn words(self) -> &'static str {
        match self {
            AgentScope::RecordsRead => "Read the parts of your profile you choose",
            AgentScope::IntentsRead => "See your wishes",
            AgentScope::IntentsWrite => "Make and withdraw wishes for you",
            AgentScope::OffersRead => "See the offers brands send you",
            AgentScope::OffersDecline => "Decline offers for you",
            AgentScope::OffersPropose => "Suggest which offers to take (you decide)",
        }
    }
}

impl fmt::Display for AgentScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every agent scope's name, for metadata documents.
pub fn scope_names() -> Vec<&'static str> {
    AgentScope::ALL.iter().map(|s| s.as_str()).collect()
}

/// A space-separated `scope` parameter (RFC 6749 §3.3) of agent scopes. `None` or an empty
/// parameter asks for every agent scope (the person narrows it on the consent page). A name that
/// is not an agent scope is refused with a sentence naming it, brand scopes included.
pub fn parse_scopes(text: Option<&str>) -> Result<BTreeSet<AgentScope>, String> {
    let text = text.unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(AgentScope::ALL.into_iter().collect());
    }
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(|name| {
            AgentScope::parse(name).ok_or_else(|| {
                format!(
                    "{name} is not a scope an assistant can have; use some of {}",
                    scope_names().join(" ")
                )
            })
        })
        .collect()
}

/// The `scope` value of a set of agent scopes: space-separated, in a stable order.
pub fn scope_text(scopes: &BTreeSet<AgentScope>) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The most redirect URIs one agent may register.
pub const MAX_REDIRECT_URIS: usize = 5;
/// The longest client name kept (longer ones are refused: the name is shown to the person).
pub const MAX_NAME_CHARS: usize = 100;
/// The longest redirect URI accepted.
const MAX_URI_CHARS: usize = 512;

/// Whether `host` is a loopback address as RFC 8252 §7.3 means it (`127.0.0.1`, `[::1]`), or
/// `localhost` (§8.3 discourages it, but MCP clients use it, and it resolves to the same machine).
fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    }
}

/// Checks one redirect URI an agent registers: `https`, or `http` on a loopback host (RFC 8252
/// §7.3), absolute, without a fragment (RFC 6749 §3.1.2) or user information.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI_CHARS {
        return Err(format!(
            "a redirect URI may be at most {MAX_URI_CHARS} characters"
        ));
    }
    let url = url::Url::parse(uri).map_err(|e| format!("{uri} is not a URL: {e}"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri} has a fragment; redirect URIs may not"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{uri} holds user information; redirect URIs may not"
        ));
    }
    let Some(host) = url.host() else {
        return Err(format!("{uri} names no host"));
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&host) => Ok(()),
        "http" => Err(format!(
            "{uri} is plain http on another machine: use https, or http on 127.0.0.1, [::1] or localhost (RFC 8252)"
        )),
        other => Err(format!(
            "{uri} uses the {other} scheme: an assistant's redirect URI is https, or http on a loopback address"
        )),
    }
}

/// Whether `given` matches the registered `registered` redirect URI: exactly, or for a loopback
/// `http` URI with any port (RFC 8252 §7.3: a native app picks a free port each time).
pub fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(mut registered), Ok(mut given)) = (url::Url::parse(registered), url::Url::parse(given))
    else {
        return false;
    };
    let loopback =
        registered.scheme() == "http" && registered.host().is_some_and(|h| is_loopback_host(&h));
    if !loopback {
        return false;
    }
    if registered.set_port(None).is_err() || given.set_port(None).is_err() {
        return false;
    }
    registered == given
}

/// What an assistant sends to register itself (RFC 7591 §2). Unknown members are ignored, as
/// §3.2.1 asks; a member this vault cannot honour is refused by [`AgentRegistration::validate`].
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct AgentRegistration {
    /// Shown to the person on the consent page and in Settings.
    #[schema(example = "Claude")]
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    /// https, or http on a loopback address (any port is then accepted, RFC 8252 §7.3).
    pub redirect_uris: Option<Vec<String>>,
    /// `none`: an assistant is a public client.
    pub token_endpoint_auth_method: Option<String>,
    /// `authorization_code`, and `refresh_token` if wanted (the default is both).
    pub grant_types: Option<Vec<String>>,
    /// `["code"]`.
    pub response_types: Option<Vec<String>>,
    /// Space-separated agent scopes; the default is every one (the person narrows them).
    pub scope: Option<String>,
}

/// A registration that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAgentRegistration {
    pub client_name: String,
    pub client_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: BTreeSet<AgentScope>,
}

/// The name an assistant that sends none is shown by.
pub const UNNAMED: &str = "An unnamed assistant";

impl AgentRegistration {
    /// Whether a registration without an invitation is an assistant's: a public client
    /// (`token_endpoint_auth_method` `none`). Anything else needs an invitation (a brand).
    pub fn is_public_client(&self) -> bool {
        self.token_endpoint_auth_method.as_deref() == Some("none")
    }

    /// Checks the registration (RFC 7591 §2, RFC 8252); the error is the sentence of an
    /// `invalid_redirect_uri` (first) or `invalid_client_metadata` (second) answer.
    pub fn validate(self) -> Result<ValidAgentRegistration, (&'static str, String)> {
        let metadata = |m: String| ("invalid_client_metadata", m);
        if !self.is_public_client() {
            return Err(metadata(
                "an assistant registers as a public client: token_endpoint_auth_method must be none"
                    .into(),
            ));
        }
        let client_name = match self.client_name.as_deref().map(str::trim) {
            None | Some("") => UNNAMED.to_owned(),
            Some(name) if name.chars().count() > MAX_NAME_CHARS => {
                return Err(metadata(format!(
                    "client_name may be at most {MAX_NAME_CHARS} characters"
                )));
            }
            Some(name) if name.chars().any(char::is_control) => {
                return Err(metadata(
                    "client_name may not hold control characters".into(),
                ));
            }
            Some(name) => name.to_owned(),
        };
        let client_uri = match self.client_uri {
            None => None,
            Some(uri) => {
                let url = url::Url::parse(&uri)
                    .map_err(|_| metadata(format!("client_uri {uri} is not a URL")))?;
                if !matches!(url.scheme(), "https" | "http") || uri.len() > MAX_URI_CHARS {
                    return Err(metadata("client_uri must be an http(s) URL".into()));
                }
                Some(uri)
            }
        };
        let redirect_uris = self.redirect_uris.unwrap_or_default();
        if redirect_uris.is_empty() {
            return Err((
                "invalid_redirect_uri",
                "redirect_uris is required: where the browser returns after the person decides"
                    .into(),
            ));
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err((
                "invalid_redirect_uri",
                format!("at most {MAX_REDIRECT_URIS} redirect_uris"),
            ));
        }
        for uri in &redirect_uris {
            check_redirect_uri(uri).map_err(|e| ("invalid_redirect_uri", e))?;
        }
        let grant_types = self
            .grant_types
            .unwrap_or_else(|| vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
        if let Some(other) = grant_types
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(metadata(format!(
                "grant type {other} is not for assistants: use authorization_code and refresh_token"
            )));
        }
        if !grant_types.iter().any(|g| g == "authorization_code") {
            return Err(metadata(
                "grant_types must include authorization_code".into(),
            ));
        }
        if let Some(types) = &self.response_types
            && types.iter().any(|t| t != "code")
        {
            return Err(metadata("response_types must be [\"code\"]".into()));
        }
        let scopes = parse_scopes(self.scope.as_deref()).map_err(metadata)?;
        let mut grant_types_unique = Vec::new();
        for g in grant_types {
            if !grant_types_unique.contains(&g) {
                grant_types_unique.push(g);
            }
        }
        Ok(ValidAgentRegistration {
            client_name,
            client_uri,
            redirect_uris,
            grant_types: grant_types_unique,
            scopes,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    fn registration(
        value: serde_json::Value,
    ) -> Result<ValidAgentRegistration, (&'static str, String)> {
        serde_json::from_value::<AgentRegistration>(value)
            .unwrap()
            .validate()
    }

    #[test]
    fn what_an_mcp_client_sends_registers_and_brand_shaped_metadata_does_not() {
        let valid = registration(serde_json::json!({
            "client_name": "Claude", "redirect_uris": ["http://localhost:3030/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none", "logo_uri": "https://ignored.example/x.png",
        }))
        .unwrap();
        assert_eq!(valid.client_name, "Claude");
        assert_eq!(valid.scopes.len(), AgentScope::ALL.len());
        let secret = registration(serde_json::json!({
            "client_name": "x", "redirect_uris": ["https://a.example/cb"],
            "token_endpoint_auth_method": "client_secret_post",
        }));
        assert_eq!(secret.unwrap_err().0, "invalid_client_metadata");
        let credentials = registration(serde_json::json!({
            "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none",
            "grant_types": ["client_credentials"],
        }));
        assert_eq!(credentials.unwrap_err().0, "invalid_client_metadata");
        let plain_http = registration(serde_json::json!({
            "redirect_uris": ["http://evil.example/cb"], "token_endpoint_auth_method": "none",
        }));
        assert_eq!(plain_http.unwrap_err().0, "invalid_redirect_uri");
        let none = registration(serde_json::json!({ "token_endpoint_auth_method": "none" }));
        assert_eq!(none.unwrap_err().0, "invalid_redirect_uri");
        let unnamed = registration(serde_json::json!({
            "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none",
            "client_name": "  ",
        }));
        assert_eq!(unnamed.unwrap().client_name, UNNAMED);
    }
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_wire_names() {
        for scope in AgentScope::ALL {
            assert_eq!(AgentScope::parse(scope.as_str()), Some(scope));
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
            assert_eq!(serde_json::from_str::<AgentScope>(&json).unwrap(), scope);
        }
        assert_eq!(AgentScope::parse("intents:read"), None);
    }

    #[test]
    fn no_scope_asks_for_all_and_brand_scopes_are_refused() {
        assert_eq!(parse_scopes(None).unwrap().len(), AgentScope::ALL.len());
        assert_eq!(
            parse_scopes(Some(" ")).unwrap().len(),
            AgentScope::ALL.len()
        );
        let two = parse_scopes(Some("agent.offers.read  agent.records.read")).unwrap();
        assert_eq!(scope_text(&two), "agent.records.read agent.offers.read");
        let refused = parse_scopes(Some("agent.offers.read intents:read")).unwrap_err();
        assert!(refused.starts_with("intents:read is not"), "{refused}");
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for good in [
            "https://app.example/callback",
            "http://127.0.0.1:33418/callback",
            "http://[::1]/cb",
            "http://localhost:3030/callback",
        ] {
            assert_eq!(check_redirect_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "http://app.example/callback",
            "https://app.example/cb#x",
            "https://user:pw@app.example/cb",
            "javascript:alert(1)",
            "com.example.app:/cb",
            "/relative",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_loopback_redirect_matches_on_any_port_and_nothing_else_does() {
        let loopback = "http://127.0.0.1:3030/callback";
        assert!(redirect_matches(
            loopback,
            "http://127.0.0.1:51234/callback"
        ));
        assert!(redirect_matches(loopback, "http://127.0.0.1/callback"));
        assert!(!redirect_matches(loopback, "http://127.0.0.1:3030/other"));
        assert!(!redirect_matches(
            loopback,
            "http://127.0.0.2:3030/callback"
        ));
        assert!(!redirect_matches(
            loopback,
            "http://127.0.0.1:3030/callback?x=1"
        ));
        let https = "https://app.example/cb";
        assert!(redirect_matches(https, https));
        assert!(!redirect_matches(https, "https://app.example:8443/cb"));
    }
}
