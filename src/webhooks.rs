//! Outbound webhook requests: the only module that makes HTTP requests to brands (reqwest, with
//! rustls on ring). It sends what it is given and reports what happened; the service decides
//! what to send, when to retry and when to give up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long one delivery may take before it counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client for deliveries: no redirects (a brand must give its final URL), no cookies,
/// bounded time.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_loopback: bool,
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

/// Whether a webhook may be sent to `ip`: never to this machine's or a private network's
/// addresses (a brand must not make the vault reach into the self-hoster's network), except
/// loopback when explicitly allowed for local testing.
pub fn allowed_ip(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves webhook hosts and keeps only the addresses [`allowed_ip`] allows, so that a name
/// pointing inside the network is refused at connection time, whatever it resolved to before.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|a| allowed_ip(a.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{} resolves only to private or local addresses",
                    name.as_str()
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl Sender {
    pub fn new(timeout: Duration, allow_loopback: bool) -> Result<Sender, String> {
        let client = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(GuardedResolver { allow_loopback }))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vrm-vault/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Sender {
            client,
            allow_loopback,
        })
    }

    /// Sends one delivery; `Ok` only for a 2xx answer (Standard Webhooks: anything else is a
    /// failure to retry).
    pub async fn send(&self, delivery: &Delivery) -> Result<u16, String> {
        // An address written in the URL is not resolved, so it is checked here.
        let url = reqwest::Url::parse(&delivery.url).map_err(|e| format!("bad URL: {e}"))?;
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !allowed_ip(ip, self.allow_loopback)) {
            return Err("refused: the address is private or local".into());
        }
        let response = self
            .client
            .post(&delivery.url)
            .header("content-type", "application/cloudevents+json")
            .header("webhook-id", &delivery.webhook_id)
            .header("webhook-timestamp", delivery.timestamp.to_string())
            .header("webhook-signature", &delivery.signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    format!("request failed: {e}")
                }
            })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err(format!("answered {status}"))
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
