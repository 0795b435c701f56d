//! Outbound webhook requests: the only module that makes HTTP requests to brands (reqwest, with
//! rustls on ring). It sends what it is given and reports what happened; the service decides
//! what to send, when to retry and when to give up.

use std::time::Duration;

/// How long one delivery may take before it counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client for deliveries: no redirects (a brand must give its final URL), no cookies,
/// bounded time.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
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

impl Sender {
    pub fn new(timeout: Duration) -> Result<Sender, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vrm-vault/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Sender { client })
    }

    /// Sends one delivery; `Ok` only for a 2xx answer (Standard Webhooks: anything else is a
    /// failure to retry).
    pub async fn send(&self, delivery: &Delivery) -> Result<u16, String> {
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
