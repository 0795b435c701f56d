//! Command line and configuration: one typed [`Cli`] parsed by clap, every option documented and
//! settable from the environment as `VRM_*`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::webhooks::WebhookProxy;

#[derive(Debug, Parser)]
#[command(
    name = "vrm-vault",
    version,
    about = "Your personal data vault: your data, your terms, your intents.",
    long_about = "vrm-vault keeps your personal data and your own terms of service in an encrypted \
                  store, and lets brands read only what you grant, for as long as you grant it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the vault server (the web app and the API).
    Serve(ServeConfig),
    /// Create a vault without a browser and print its recovery key (for scripted installs).
    Init(InitArgs),
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the unlock key file that lets the server unseal itself at boot.
    UnlockKey {
        #[command(subcommand)]
        command: UnlockKeyCommand,
    },
    /// Write everything the vault holds as one JSON document readable without the vault (server
    /// stopped; while it runs, use GET /api/v1/export).
    Export {
        #[command(flatten)]
        vault: OfflineArgs,
        /// Where to write the export (`-` for standard output).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write an encrypted backup (server stopped; while it runs, use GET /api/v1/backup).
    Backup {
        #[command(flatten)]
        vault: OfflineArgs,
        /// Where to write the backup.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into an empty data directory, opening it with the passphrase it was made
    /// under, or with the recovery key and a new passphrase.
    Restore(RestoreArgs),
    /// Delete everything, for real (server stopped): revoke all access, send brands with a webhook
    /// a signed erasure request, destroy the keys and the store, and print the final signed
    /// receipt on standard output. The data directory is left empty, ready for a new vault.
    DeleteEverything(DeleteArgs),
    /// Run the intent relay (DESIGN §11), or manage its brands (`relay admit`, `suspend`, `resume`).
    Relay(crate::relay::config::RelayArgs),
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub vault: OfflineArgs,
    /// Exactly `delete everything`, to confirm.
    #[arg(long, value_name = "PHRASE")]
    pub confirm: String,
    /// Let brands' webhooks on loopback addresses be told (local testing only).
    #[arg(long, env = "VRM_ALLOW_LOOPBACK_WEBHOOKS")]
    pub allow_loopback_webhooks: bool,
    /// Send the erasure webhooks through this proxy (see `serve --webhook-proxy`).
    #[arg(long, env = "VRM_WEBHOOK_PROXY", value_name = "URL", value_parser = WebhookProxy::parse)]
    pub webhook_proxy: Option<WebhookProxy>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The empty data directory to restore into.
    #[arg(long, env = "VRM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The backup file.
    #[arg(long, value_name = "FILE")]
    pub backup: PathBuf,
    /// A file holding the passphrase the vault had when the backup was made (`-`: standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "recovery_key_file")]
    pub passphrase_file: Option<PathBuf>,
    /// Or a file holding the recovery key ...
    #[arg(long, value_name = "FILE", requires = "new_passphrase_file")]
    pub recovery_key_file: Option<PathBuf>,
    /// ... and one holding the restored vault's new passphrase.
    #[arg(long, value_name = "FILE", requires = "recovery_key_file")]
    pub new_passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log's hash chain; exits 0 when it holds, 1 when it does not.
    Verify(OfflineArgs),
}

#[derive(Debug, Subcommand)]
pub enum UnlockKeyCommand {
    /// Create an unlock key file (readable by its owner only). Anyone who can read it and the data
    /// directory can open the vault: see SECURITY.md before using it.
    Create {
        #[command(flatten)]
        vault: OfflineArgs,
        /// Where to write the unlock key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Remove the unlock key slot, so an existing unlock key file stops working.
    Remove(OfflineArgs),
}

/// Options shared by the commands that open a vault while the server is stopped.
#[derive(Debug, Args)]
pub struct OfflineArgs {
    /// The vault's data directory.
    #[arg(long, env = "VRM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A file holding the passphrase on its first line, or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The data directory to create the vault in (must not hold a vault yet).
    #[arg(long, env = "VRM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A file holding the passphrase on its first line, or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// A TOML file of options, keyed by their long names (`listen = "127.0.0.1:8080"`,
    /// `cache-mb = 32`, `trusted-proxies = ["127.0.0.1"]`). Flags and environment variables win
    /// over the file; the file wins over the defaults.
    #[arg(long, env = "VRM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the vault keeps its key file and encrypted store. Defaults to the per-user data
    /// directory (on Linux `~/.local/share/vrm-vault`).
    #[arg(long, env = "VRM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address and port to listen on. Loopback by default: put a TLS reverse proxy in front to
    /// reach it from elsewhere. Port 0 picks a free port.
    #[arg(
        long,
        env = "VRM_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR:PORT"
    )]
    pub listen: SocketAddr,
    /// The URL people and brands reach the vault at (e.g. `https://vault.example.org`). When it
    /// is https, cookies are marked Secure. Defaults to `http://` plus the listen address.
    #[arg(long, env = "VRM_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// A file holding an unlock key (made with `vrm-vault unlock-key create`): the vault unseals
    /// itself at start-up without the passphrase. A trade-off: see SECURITY.md.
    #[arg(long, env = "VRM_UNLOCK_KEY_FILE", value_name = "FILE")]
    pub unlock_key_file: Option<PathBuf>,
    /// Memory sled may use for its page cache, in MiB. The default keeps a 100,000-record vault
    /// near 80 MiB resident while its working set stays cached (see the README's figures).
    #[arg(long, env = "VRM_CACHE_MB", default_value_t = 24, value_parser = clap::value_parser!(u64).range(4..=4096))]
    pub cache_mb: u64,
    /// Minutes of inactivity after which an owner session ends.
    #[arg(long, env = "VRM_SESSION_IDLE_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub session_idle_minutes: u64,
    /// Hours after which an owner session ends however active it is.
    #[arg(long, env = "VRM_SESSION_MAX_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub session_max_hours: u64,
    /// Lifetime of brand access tokens, in seconds (at most 900: RFC 9068 tokens are checked
    /// locally by brands, so they are kept short).
    #[arg(long, env = "VRM_ACCESS_TOKEN_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub access_token_seconds: u64,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "VRM_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Let webhooks target loopback addresses (for local testing only).
    #[arg(long, env = "VRM_ALLOW_LOOPBACK_WEBHOOKS", default_value_t = false)]
    pub allow_loopback_webhooks: bool,
    /// Send webhooks through this forward proxy (`http://host:port`, e.g. where outbound traffic
    /// must pass a corporate proxy). Without it webhooks go direct: `HTTPS_PROXY`, `ALL_PROXY`
    /// and the like are ignored. Each target is still resolved and refused if any of its
    /// addresses is private or local before the proxy is asked to reach it.
    #[arg(long, env = "VRM_WEBHOOK_PROXY", value_name = "URL", value_parser = WebhookProxy::parse)]
    pub webhook_proxy: Option<WebhookProxy>,
    /// A reverse proxy (address or network, e.g. `127.0.0.1` or `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client, for rate limits. Repeat it, or separate with commas.
    /// Without it forwarding headers are ignored: behind a proxy, every client then shares the
    /// proxy's address, which makes rate limits stricter, not looser.
    #[arg(long = "trusted-proxy", visible_alias = "trusted-proxies", env = "VRM_TRUSTED_PROXIES",
          value_delimiter = ',', value_name = "IP[/BITS]", value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Serve Prometheus metrics at `GET /metrics` on this second address (off by default). Keep
    /// it on loopback or a private network: it is not authenticated.
    #[arg(long, env = "VRM_METRICS_LISTEN", value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Open connections at most; more wait until one closes.
    #[arg(long, env = "VRM_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_connections: u32,
    /// An intent relay (DESIGN §11) the person's intents marked `"relay": true` are published
    /// to, e.g. `https://relay.example.org`. Repeat it, or separate with commas. The vault dials
    /// out to it (nothing has to reach the vault); what it sends is in SECURITY.md.
    #[arg(long = "relay", env = "VRM_RELAYS", value_delimiter = ',', value_name = "URL",
          value_parser = crate::relay_link::RelayUrl::parse)]
    pub relays: Vec<crate::relay_link::RelayUrl>,
}

/// An address or a network in CIDR notation.
fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or network (like 10.0.0.0/8)"))
}

/// Parses the command line, with `serve --config FILE` filling in what neither the command line
/// nor the environment set. The file's entries become arguments, so they are checked exactly as
/// flags are.
pub fn parse() -> Result<Cli, String> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(e) => e.exit(),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let Command::Serve(ServeConfig {
        config: Some(path), ..
    }) = &cli.command
    else {
        return Ok(cli);
    };
    let Some(serve) = matches.subcommand_matches("serve") else {
        return Ok(cli);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the config file {}: {e}", path.display()))?;
    let extra =
        file_arguments(&text, serve).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let mut all = args;
    all.extend(extra.into_iter().map(Into::into));
    let matches = Cli::command()
        .try_get_matches_from(all)
        .map_err(|e| format!("config file {}: {}", path.display(), e.render()))?;
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// The arguments a config file adds: one per key whose option was not set on the command line or
/// in the environment.
fn file_arguments(text: &str, given: &clap::ArgMatches) -> Result<Vec<String>, String> {
    use clap::parser::ValueSource;
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .ok_or("the serve command is missing")?;
    let mut extra = Vec::new();
    for (key, value) in table {
        let arg = serve
            .get_arguments()
            .find(|arg| {
                arg.get_long_and_visible_aliases()
                    .is_some_and(|names| names.contains(&key.as_str()))
            })
            .filter(|arg| arg.get_id() != "config")
            .ok_or_else(|| format!("unknown option {key:?}"))?;
        if matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let long = format!("--{}", arg.get_long().unwrap_or(&key));
        let values = match value {
            toml::Value::Array(items) => items,
            single => vec![single],
        };
        for value in values {
            match value {
                toml::Value::Boolean(on) if !arg.get_action().takes_values() => {
                    if on {
                        extra.push(long.clone());
                    }
                }
                toml::Value::String(s) => extra.extend([long.clone(), s]),
                toml::Value::Integer(n) => extra.extend([long.clone(), n.to_string()]),
                other => {
                    return Err(format!(
                        "{key}: expected {}, got {}",
                        if arg.get_action().takes_values() {
                            "a string or a number"
                        } else {
                            "true or false"
                        },
                        other.type_str()
                    ));
                }
            }
        }
    }
    Ok(extra)
}

impl ServeConfig {
    /// The public URL, defaulting to plain http on the listen address.
    pub fn public_url(&self) -> String {
        self.public_url_on(self.listen)
    }

    /// The public URL once the listener is bound (`--listen …:0` picks the port then).
    pub fn public_url_on(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Whether cookies must carry `Secure` (the vault is reached over TLS).
    pub fn secure_cookies(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// Checks what clap cannot: returns a sentence for the self-hoster if something is off.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "--public-url must start with http:// or https://, got {url}"
            ));
        }
        Ok(())
    }
}

/// The data directory: the one given, or the per-user default.
pub fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    directories::ProjectDirs::from("org", "vrm-vault", "vrm-vault")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or_else(|| anyhow::anyhow!("no home directory found: pass --data-dir"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeConfig {
        let all = ["vrm-vault", "serve"].iter().chain(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Serve(config) => config,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn by_default_the_vault_listens_on_loopback_only() {
        let config = serve(&[]);
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(config.trusted_proxies.is_empty());
        assert!(config.metrics_listen.is_none());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let config = serve(&[
            "--trusted-proxy",
            "127.0.0.1,10.0.0.0/8",
            "--trusted-proxy",
            "::1",
        ]);
        let nets: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        assert!(
            Cli::try_parse_from(["vrm-vault", "serve", "--trusted-proxy", "proxy.lan"]).is_err()
        );
    }

    #[test]
    fn a_config_file_fills_in_only_what_flags_left_unset() {
        let given = Cli::command()
            .try_get_matches_from(["vrm-vault", "serve", "--cache-mb", "64"])
            .unwrap();
        let serve = given.subcommand_matches("serve").unwrap();
        let extra = file_arguments(
            "cache-mb = 32\nmax-connections = 100\nallow-loopback-webhooks = true\n\
             trusted-proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
            serve,
        )
        .unwrap();
        assert_eq!(
            extra,
            [
                "--allow-loopback-webhooks",
                "--max-connections",
                "100",
                "--trusted-proxy",
                "127.0.0.1",
                "--trusted-proxy",
                "10.0.0.0/8"
            ]
        );
        assert!(file_arguments("config = \"x.toml\"\n", serve).is_err());
        assert!(file_arguments("max-connections = [[1]]\n", serve).is_err());
        assert!(file_arguments("not toml at all", serve).is_err());
    }
}
