//! The relay's command line: `vrm-vault relay` serves, `vrm-vault relay admit` registers a brand.
//! Every option is settable from the environment as `VRM_*`, like the vault's.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `vrm-vault relay [OPTIONS]` or `vrm-vault relay admit ...`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RelayArgs {
    #[command(subcommand)]
    pub command: Option<RelayCommand>,
    #[command(flatten)]
    pub serve: RelayServeArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum RelayCommand {
    /// Admit a brand: register its name and JWKS (a P-256 signing key and a P-256 encryption
    /// key) and print `{"client_id": "..."}`; with `--batch FILE`, many brands from JSON lines.
    Admit(AdmitArgs),
    /// Suspend an admitted brand: from its next request it gets no token, its tokens stop, it
    /// is no longer published or matched, and its queued webhooks are dropped.
    Suspend(BrandArgs),
    /// Resume a suspended brand.
    Resume(BrandArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BrandArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The brand's client id, as `relay admit` printed it.
    #[arg(long, value_name = "ID")]
    pub client_id: String,
}

/// Where the NATS JetStream cluster is, and how its streams and buckets are laid out.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URLs, comma-separated (`nats://127.0.0.1:4222,nats://...`).
    #[arg(
        long = "nats",
        env = "VRM_RELAY_NATS",
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub urls: Vec<String>,
    /// Replicas of every stream and bucket the relay creates (3 on a three-node cluster).
    #[arg(long, env = "VRM_RELAY_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
}

#[derive(Debug, Clone, Args)]
pub struct RelayServeArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address to listen on. The relay speaks plain HTTP: put a TLS reverse proxy in front.
    #[arg(long, env = "VRM_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The URL brands and vaults reach the relay at (the OAuth issuer and the `source` of its
    /// events); defaults to `http://<listen address>`.
    #[arg(long, env = "VRM_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Serve Prometheus metrics at `GET /metrics` on this second address (off by default). Keep
    /// it on loopback or a private network: it is not authenticated.
    #[arg(long, env = "VRM_METRICS_LISTEN", value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Let brands' webhooks target loopback addresses (local testing only).
    #[arg(long, env = "VRM_ALLOW_LOOPBACK_WEBHOOKS")]
    pub allow_loopback_webhooks: bool,
    /// A reverse proxy (address or network, e.g. `127.0.0.1` or `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client, for the intents-per-address limit. Repeat it, or
    /// separate with commas. Without it forwarding headers are ignored.
    #[arg(long = "trusted-proxy", env = "VRM_RELAY_TRUSTED_PROXIES", value_delimiter = ',',
          value_name = "IP[/BITS]", value_parser = crate::config::parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Intents one source address may publish per hour (all at once, or spread).
    #[arg(long, env = "VRM_RELAY_INTENTS_PER_HOUR", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub intents_per_hour: u32,
    /// Offers one brand may make per minute, across intents.
    #[arg(long, env = "VRM_RELAY_OFFERS_PER_MINUTE", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub offers_per_minute: u32,
    /// Offers one brand may make on one intent (1 to 5).
    #[arg(long, env = "VRM_RELAY_OFFERS_PER_BRAND_PER_INTENT", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub offers_per_brand_per_intent: u8,
    /// Messages a vault may send about one intent at once; then one every 30 seconds.
    #[arg(long, env = "VRM_RELAY_MESSAGES_PER_INTENT", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub messages_per_intent: u32,
    /// Log format: `text` or `json`.
    #[arg(long, env = "VRM_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,
}

impl RelayServeArgs {
    /// The abuse limits this command line sets.
    pub fn limits(&self) -> super::limits::Limits {
        super::limits::Limits {
            intents_per_hour: self.intents_per_hour,
            offers_per_minute: self.offers_per_minute,
            offers_per_brand_per_intent: self.offers_per_brand_per_intent,
            messages_per_intent: self.messages_per_intent,
        }
    }

    /// The public URL once the listener is bound, without a trailing slash.
    pub fn public_url_on(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Checks what clap cannot: returns a sentence for the operator if something is off.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "--public-url must start with http:// or https://, got {url}"
            ));
        }
        self.nats.validate()
    }
}

impl NatsArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.urls.iter().all(|u| u.trim().is_empty()) {
            return Err("--nats must name at least one NATS server URL".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct AdmitArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The brand's name as vaults will show it (1 to 100 characters).
    #[arg(long, value_name = "NAME", required_unless_present = "batch")]
    pub name: Option<String>,
    /// A JSON file holding the brand's public JWKS: one P-256 key with `"use": "sig"` and one
    /// with `"use": "enc"`, each with a `kid`.
    #[arg(long, value_name = "FILE", required_unless_present = "batch")]
    pub jwks: Option<PathBuf>,
    /// Admit many brands instead: a file (`-` for standard input) of JSON lines
    /// `{"name": "...", "jwks": {...}}`. Every line is checked before any brand is stored; one
    /// `{"line": N, "client_id": "..."}` line is printed per brand admitted, in the file's order.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "jwks"])]
    pub batch: Option<PathBuf>,
}
