//! Command line and configuration: one typed [`Cli`] parsed by clap, every option documented and
//! settable from the environment as `VRM_*`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
