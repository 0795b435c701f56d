//! The vault's side of the intent relay (DESIGN §11), on the wire: outbound HTTP requests from
//! the vault to the relays the self-hoster configured (`serve --relay URL`). The vault never
//! imports the NATS client: a relay is an HTTP service to it, reached by dialing out, so a
//! vault behind NAT needs no open port.
//!
//! This module only sends what it is given and says what happened ([`LinkError`]); which
//! intent to publish, when to retry, what to verify and what to record are the service's
//! (`service::relayed`). Every request has a bounded time (long polls included), follows no
//! redirect, keeps no cookie and ignores ambient proxy variables, as webhooks do.
//!
//! The calls, each a route of the relay's public contract:
//! - [`RelayClient::publish`]: `POST /relay/v1/intents`;
//! - [`RelayClient::offers`]: `GET /relay/v1/intents/{id}/offers?after=N&wait=S`, with a
//!   bearer JWT signed by the intent's key;
//! - [`RelayClient::brand`]: `GET /relay/v1/brands/{client_id}` (a brand's name and JWKS);
//! - [`RelayClient::message`]: `POST /relay/v1/intents/{id}/messages`.

use std::time::Duration;

use serde_json::Value;

/// How long a request other than a long poll may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the vault asks a relay to hold a poll open when no offer is waiting (the relay's
/// limit is 25 s).
pub const LONG_POLL_SECONDS: u64 = 20;
/// How long a long poll may take in all: the wait plus a request's time.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(LONG_POLL_SECONDS + 10);
/// The most bytes of a relay's answer read (offers of one intent are few and small).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A relay's base URL as configured: `http://` or `https://`, a host, no query or fragment,
/// kept without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayUrl(String);

impl RelayUrl {
    /// Parses a relay URL given on the command line.
    pub fn parse(text: &str) -> Result<RelayUrl, String> {
        let text = text.trim();
        let url = url::Url::parse(text)
            .map_err(|e| format!("the relay URL {text:?} is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "the relay URL {text:?} must be http:// or https:// with a host"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "the relay URL {text:?} must not carry a query, a fragment or credentials"
            ));
        }
        Ok(RelayUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host (and port when not the default), as the app names the relay.
    pub fn name(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                _ => self.0.clone(),
            },
            Err(_) => self.0.clone(),
        }
    }

    /// The full URL of `path` (which starts with `/`) at this relay.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The URL a vault reads an intent's offers at: also the audience of its read token.
    pub fn offers_url(&self, intent_id: &str) -> String {
        self.join(&format!("/relay/v1/intents/{intent_id}/offers"))
    }

    /// The URL a vault posts an intent's messages to: also the audience of its token.
    pub fn messages_url(&self, intent_id: &str) -> String {
        self.join(&format!("/relay/v1/intents/{intent_id}/messages"))
    }
}

impl std::fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a call to a relay did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The relay could not be reached, timed out, or said it is unavailable (5xx, 429):
    /// worth trying again, not before `retry_after` seconds when it said so.
    #[error("the relay could not be reached or is unavailable ({reason})")]
    Unavailable {
        reason: String,
        retry_after: Option<u64>,
    },
    /// The relay refused the request (4xx): trying the same again will not help.
    #[error("the relay refused it: {message} ({status})")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The relay answered 2xx with something that is not the expected JSON.
    #[error("the relay's answer could not be read ({0})")]
    BadAnswer(String),
}

impl LinkError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LinkError::Unavailable { .. })
    }

    /// The relay's `Retry-After`, when it gave one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            LinkError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the relay no longer knows the intent (it expired there, or never was).
    pub fn is_not_found(&self) -> bool {
        matches!(self, LinkError::Refused { status: 404, .. })
    }
}

/// A page of an intent's offers.
#[derive(Debug, Clone)]
pub struct OfferPage {
    /// The relay's offer records, oldest first.
    pub offers: Vec<Value>,
    /// What to pass as `after` next time, when the relay numbers its answers.
    pub next_after: Option<u64>,
}

/// The HTTP client for relays.
#[derive(Debug, Clone)]
pub struct RelayClient {
    http: reqwest::Client,
}

impl RelayClient {
    pub fn new() -> Result<RelayClient, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("vrm-vault/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the relay client: {e}"))?;
        Ok(RelayClient { http })
    }

    /// Publishes an intent; returns the relay's id for it.
    pub async fn publish(&self, relay: &RelayUrl, body: &Value) -> Result<String, LinkError> {
        let request = self
            .http
            .post(relay.join("/relay/v1/intents"))
            .timeout(REQUEST_TIMEOUT)
            .json(body);
        let answer = send(request).await?;
        id_of(&answer)
    }

    /// The offers of an intent after `after`, waiting up to `wait` seconds for one.
    pub async fn offers(
        &self,
        relay: &RelayUrl,
        intent_id: &str,
        token: &str,
        after: u64,
        wait: u64,
    ) -> Result<OfferPage, LinkError> {
        let request = self
            .http
            .get(relay.offers_url(intent_id))
            .query(&[("after", after), ("wait", wait)])
            .timeout(LONG_POLL_TIMEOUT)
            .bearer_auth(token);
        let answer = send(request).await?;
        // The relay answers `{"offers": [...], "next_after": n}`; an older relay answers the
        // list alone.
        let (offers, next_after) = match answer {
            Value::Array(offers) => (offers, None),
            Value::Object(mut map) => (
                match map.remove("offers") {
                    Some(Value::Array(offers)) => offers,
                    _ => return Err(LinkError::BadAnswer("no offers list".into())),
                },
                map.get("next_after").and_then(Value::as_u64),
            ),
            _ => return Err(LinkError::BadAnswer("not a JSON object".into())),
        };
        Ok(OfferPage { offers, next_after })
    }

    /// A brand's published name and JWKS: `{"client_id", "name", "jwks"}`.
    pub async fn brand(&self, relay: &RelayUrl, client_id: &str) -> Result<Value, LinkError> {
        if client_id.is_empty()
            || client_id.len() > 128
            || !client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(LinkError::BadAnswer(
                "the offer names a brand id that cannot be looked up".into(),
            ));
        }
        let request = self
            .http
            .get(relay.join(&format!("/relay/v1/brands/{client_id}")))
            .timeout(REQUEST_TIMEOUT);
        send(request).await
    }

    /// Posts a message about an intent; returns the relay's id for it.
    pub async fn message(
        &self,
        relay: &RelayUrl,
        intent_id: &str,
        token: &str,
        body: &Value,
    ) -> Result<String, LinkError> {
        let request = self
            .http
            .post(relay.messages_url(intent_id))
            .timeout(REQUEST_TIMEOUT)
            .bearer_auth(token)
            .json(body);
        let answer = send(request).await?;
        id_of(&answer)
    }
}

fn id_of(answer: &Value) -> Result<String, LinkError> {
    answer
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_owned)
        .ok_or_else(|| LinkError::BadAnswer("no id in the answer".into()))
}

/// Sends a request and reads a JSON answer, sorting failures into retryable and not.
async fn send(request: reqwest::RequestBuilder) -> Result<Value, LinkError> {
    let response = request.send().await.map_err(|e| LinkError::Unavailable {
        reason: if e.is_timeout() {
            "timed out".into()
        } else if e.is_connect() {
            "could not connect".into()
        } else {
            "the connection failed".into()
        },
        retry_after: None,
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bytes = read_limited(response).await?;
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(LinkError::Unavailable {
            reason: format!("HTTP {}", status.as_u16()),
            retry_after,
        });
    }
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    if !status.is_success() {
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(Value::as_str)
                .map(|s| s.chars().take(300).collect::<String>())
                .unwrap_or_default()
        };
        return Err(LinkError::Refused {
            status: status.as_u16(),
            code: field("error"),
            message: field("message"),
        });
    }
    body.ok_or_else(|| LinkError::BadAnswer("not JSON".into()))
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, LinkError> {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(LinkError::BadAnswer("the answer is too large".into()));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(bytes),
            Err(_) => {
                return Err(LinkError::Unavailable {
                    reason: "the answer was cut off".into(),
                    retry_after: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_are_kept_without_a_trailing_slash_and_odd_ones_are_refused() {
        let url =
            RelayUrl::parse(" https://relay.example.org/ ").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(url.as_str(), "https://relay.example.org");
        assert_eq!(url.name(), "relay.example.org");
        assert_eq!(
            url.offers_url("ri_1"),
            "https://relay.example.org/relay/v1/intents/ri_1/offers"
        );
        let local =
            RelayUrl::parse("http://127.0.0.1:4222").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(local.name(), "127.0.0.1:4222");
        for bad in [
            "relay.example.org",
            "ftp://relay.example.org",
            "https://relay.example.org/?x=1",
            "https://user:pw@relay.example.org",
        ] {
            assert!(RelayUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
