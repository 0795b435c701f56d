//! Outbound webhook requests: the only module that makes HTTP requests to brands (reqwest, with
//! rustls on ring). It sends what it is given and reports what happened; the service decides
//! what to send, when to retry and when to give up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

mod addresses;
pub use addresses::allowed_ip;

/// How long one delivery may take before it counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client for deliveries: no redirects (a brand must give its final URL), no cookies,
/// bounded time, no proxy but the one configured.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_loopback: bool,
    /// Whether requests go through the configured proxy.
    proxied: bool,
    /// How long one delivery may take, the target's resolution before a proxy included.
    timeout: Duration,
}

/// One signed delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub url: String,
    pub webhook_id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
}

impl Delivery {
    /// `body` for `url`, signed per Standard Webhooks with the brand's `secret` at `timestamp`.
    pub fn signed(
        url: String,
        secret: &str,
        webhook_id: String,
        timestamp: i64,
        body: Vec<u8>,
    ) -> Result<Delivery, crate::crypto::CryptoError> {
        Delivery::signed_by(url, &[secret], webhook_id, timestamp, body)
    }

    /// `body` for `url`, signed with each of `secrets` (a brand's current webhook secret and,
    /// for a while after a rotation, its previous one).
    pub fn signed_by(
        url: String,
        secrets: &[&str],
        webhook_id: String,
        timestamp: i64,
        body: Vec<u8>,
    ) -> Result<Delivery, crate::crypto::CryptoError> {
        let signature = crate::crypto::webhook::sign_all(secrets, &webhook_id, timestamp, &body)?;
        Ok(Delivery {
            url,
            webhook_id,
            timestamp,
            signature,
            body,
        })
    }
}

/// A forward proxy the self-hoster configured for webhooks (`--webhook-proxy`). Its `Debug`
/// shows only scheme, host and port: the URL may carry the proxy's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookProxy(url::Url);

impl WebhookProxy {
    /// Parses a proxy URL: `http://` or `https://` with a host, nothing after the authority.
    pub fn parse(text: &str) -> Result<WebhookProxy, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("the webhook proxy is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("the webhook proxy must be an http:// or https:// URL with a host".into());
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err("the webhook proxy URL must not have a path, query or fragment".into());
        }
        Ok(WebhookProxy(url))
    }

    /// The proxy's host as the resolver sees it (brackets removed from an IPv6 address).
    fn host(&self) -> Option<String> {
        match self.0.host()? {
            url::Host::Domain(name) => Some(name.to_ascii_lowercase()),
            url::Host::Ipv4(ip) => Some(ip.to_string()),
            url::Host::Ipv6(ip) => Some(ip.to_string()),
        }
    }
}

impl std::fmt::Debug for WebhookProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebhookProxy({}://{}:{})",
            self.0.scheme(),
            self.0.host_str().unwrap_or_default(),
            self.0.port_or_known_default().unwrap_or_default()
        )
    }
}

/// Where webhooks may go: the address rule's one exception and the proxy, both the
/// self-hoster's choice. Ambient proxy variables (`HTTPS_PROXY`, `ALL_PROXY`...) are never
/// followed: a proxy would resolve and reach whatever host a brand names, past the filter.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// Let webhooks target loopback addresses (local testing only).
    pub allow_loopback: bool,
    /// Send webhooks through this proxy; each target is still resolved and checked first.
    pub proxy: Option<WebhookProxy>,
}

/// Why a delivery failed, as the vault records it and shows it to the brand and the owner: a
/// fixed phrase, never the underlying error's text, which can name internal hosts, addresses
/// and ports (the full error goes to the vault's log only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("bad URL")]
    BadUrl,
    #[error("refused: address not allowed")]
    AddressNotAllowed,
    #[error("host not found")]
    HostNotFound,
    #[error("connection refused")]
    ConnectionRefused,
    #[error("timed out")]
    TimedOut,
    #[error("TLS failure")]
    Tls,
    #[error("could not connect through the webhook proxy")]
    Proxy,
    #[error("could not connect")]
    Connect,
    #[error("answered {0}")]
    Status(u16),
    #[error("request failed")]
    Other,
}

/// The resolver's refusal: every address of the name is one webhooks may not reach.
#[derive(Debug, thiserror::Error)]
#[error("the name resolves only to addresses webhooks may not reach")]
struct NotAllowed;

/// The resolver's failure to find the name at all.
#[derive(Debug, thiserror::Error)]
#[error("the name was not found")]
struct NotFound(#[source] std::io::Error);

/// Resolves webhook hosts and keeps only the addresses [`allowed_ip`] allows, so that a name
/// pointing inside the network is refused at connection time, whatever it resolved to before.
/// The configured proxy's own name is the one exception: the self-hoster chose it.
#[derive(Debug, Clone)]
struct GuardedResolver {
    allow_loopback: bool,
    exempt: Option<String>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let exempt = self
            .exempt
            .as_deref()
            .is_some_and(|host| host.eq_ignore_ascii_case(name.as_str()));
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(NotFound)?;
            let allowed: Vec<SocketAddr> = found
                .filter(|a| exempt || allowed_ip(a.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(NotAllowed.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The addresses `host` resolves to, all of which must be allowed: used before handing a
/// target to the proxy, which resolves it again itself (so one bad address refuses the name).
async fn check_through_proxy(host: &str, allow_loopback: bool) -> Result<(), Failure> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| Failure::HostNotFound)?
        .collect();
    if found.is_empty() {
        return Err(Failure::HostNotFound);
    }
    if found.iter().all(|a| allowed_ip(a.ip(), allow_loopback)) {
        Ok(())
    } else {
        Err(Failure::AddressNotAllowed)
    }
}

/// The [`Failure`] a request error stands for, found by walking its causes.
fn classify(error: &reqwest::Error, proxied: bool) -> Failure {
    if error.is_timeout() {
        return Failure::TimedOut;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<NotAllowed>() {
            return Failure::AddressNotAllowed;
        }
        if e.is::<NotFound>() {
            return Failure::HostNotFound;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused if !proxied => {
                    return Failure::ConnectionRefused;
                }
                std::io::ErrorKind::TimedOut => return Failure::TimedOut,
                // rustls reports a failed handshake or a rejected certificate as invalid data.
                std::io::ErrorKind::InvalidData => return Failure::Tls,
                _ => {}
            }
        }
        cause = e.source();
    }
    match (error.is_connect(), proxied) {
        (true, true) => Failure::Proxy,
        (true, false) => Failure::Connect,
        _ => Failure::Other,
    }
}

impl Sender {
    pub fn new(timeout: Duration, egress: &Egress) -> Result<Sender, String> {
        let resolver = GuardedResolver {
            allow_loopback: egress.allow_loopback,
            exempt: egress.proxy.as_ref().and_then(WebhookProxy::host),
        };
        let builder = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(resolver))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vrm-vault/", env!("CARGO_PKG_VERSION")));
        let builder = match &egress.proxy {
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy.0.clone())
                    .map_err(|e| format!("cannot use the webhook proxy: {e}"))?,
            ),
            None => builder.no_proxy(),
        };
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Sender {
            client,
            allow_loopback: egress.allow_loopback,
            proxied: egress.proxy.is_some(),
            timeout,
        })
    }

    /// Sends one delivery; `Ok` only for a 2xx answer (Standard Webhooks: anything else is a
    /// failure to retry).
    pub async fn send(&self, delivery: &Delivery) -> Result<u16, Failure> {
        let url = reqwest::Url::parse(&delivery.url).map_err(|_| Failure::BadUrl)?;
        // An address written in the URL is not resolved, so it is checked here; a name sent
        // through the proxy is resolved by the proxy, so it is resolved and checked here first.
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !allowed_ip(IpAddr::V4(ip), self.allow_loopback) => {
                return Err(Failure::AddressNotAllowed);
            }
            Some(url::Host::Ipv6(ip)) if !allowed_ip(IpAddr::V6(ip), self.allow_loopback) => {
                return Err(Failure::AddressNotAllowed);
            }
            Some(url::Host::Domain(name)) if self.proxied => {
                tokio::time::timeout(self.timeout, check_through_proxy(name, self.allow_loopback))
                    .await
                    .map_err(|_| Failure::TimedOut)??;
            }
            Some(_) => {}
            None => return Err(Failure::BadUrl),
        }
        let response = self
            .client
            .post(url)
            .header("content-type", "application/cloudevents+json")
            .header("webhook-id", &delivery.webhook_id)
            .header("webhook-timestamp", delivery.timestamp.to_string())
            .header("webhook-signature", &delivery.signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| {
                let failure = classify(&e, self.proxied);
                // The self-hoster may need the detail; the brand and the stored record get the
                // phrase only.
                tracing::info!(error = %e, %failure, "webhook request failed");
                failure
            })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err(Failure::Status(status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_addresses_are_refused() {
        for text in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
            "224.0.0.1",
        ] {
            let ip: IpAddr = text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert!(!allowed_ip(ip, true), "{text}");
        }
        let loopback: IpAddr = IpAddr::from([127, 0, 0, 1]);
        assert!(!allowed_ip(loopback, false));
        assert!(allowed_ip(loopback, true));
        assert!(allowed_ip(IpAddr::from([93, 184, 215, 14]), false));
        assert!(allowed_ip(
            "2a00:1450:4007::1".parse().unwrap_or(loopback),
            false
        ));
    }
}
