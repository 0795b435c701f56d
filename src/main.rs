//! The `vrm-vault` binary: parse the command line, set up logging, and hand over to the library.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use vrm_vault::clock::{Clock as _, SystemClock};
use vrm_vault::config::{self, AuditCommand, Command, ServeConfig, UnlockKeyCommand};
use vrm_vault::http::{self, AppState};
use vrm_vault::relay::brands::BrandStatus;
use vrm_vault::relay::config::{AdmitArgs, BrandArgs, RelayArgs, RelayCommand, RelayServeArgs};
use vrm_vault::relay::{Relay, RelayError, RelaySettings};
use vrm_vault::secret::Secret;
use vrm_vault::service::{self, Settings, Vault};

fn main() -> ExitCode {
    // Everything this process creates is its owner's only: the vault writes personal data and
    // keys (its own files also set 0600 explicitly; this covers the store's files, which sled
    // creates). A self-hoster who wants group access grants it on the directory afterwards.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = match config::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("vrm-vault: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(config) => serve(config),
        Command::Init(args) => init(args),
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => audit_verify(args),
        Command::UnlockKey { command } => unlock_key(command),
        Command::Export { vault, out } => export(vault, &out),
        Command::Backup { vault, out } => backup(vault, &out),
        Command::Restore(args) => restore(args),
        Command::DeleteEverything(args) => delete_everything(args),
        Command::Relay(args) => relay(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vrm-vault: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let spec = std::env::var("VRM_LOG").unwrap_or_else(|_| "info".into());
    let mut filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // sled logs every key and sealed value it writes at trace level: a whole-store dump in the
    // log. It stays at info unless the filter names it.
    if !spec.contains("sled")
        && let Ok(quiet) = "sled=info".parse()
    {
        filter = filter.add_directive(quiet);
    }
    // rmcp (the MCP server at /mcp) logs each session's client parameters at info and each
    // refused tool call with its message at warn, which can quote what the assistant sent: the
    // vault's own lines say what failed without that. Errors only, unless the filter names it.
    if !spec.contains("rmcp")
        && let Ok(quiet) = "rmcp=error".parse()
    {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn serve(config: ServeConfig) -> anyhow::Result<ExitCode> {
    init_tracing(config.log_format == "json");
    config.validate().map_err(anyhow::Error::msg)?;
    let mut settings = Settings::new(config::data_dir(config.data_dir.clone())?);
    settings.cache_bytes = config.cache_mb * 1024 * 1024;
    settings.session_idle = time::Duration::minutes(config.session_idle_minutes as i64);
    settings.session_max = time::Duration::hours(config.session_max_hours as i64);
    settings.token_lifetime = time::Duration::seconds(config.access_token_seconds as i64);
    settings.allow_loopback_webhooks = config.allow_loopback_webhooks;
    settings.webhook_proxy = config.webhook_proxy.clone();
    settings.relays = config.relays.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        settings.issuer = config.public_url_on(addr);
        let data_dir = settings.data_dir.clone();
        let vault = Vault::start(settings, Arc::new(SystemClock))
            .with_context(|| format!("cannot start on {}", data_dir.display()))?;
        tracing::info!(data_dir = %data_dir.display(), state = vault.phase_name(), "vault opened");
        if let Some(path) = &config.unlock_key_file {
            vault
                .unseal_with_unlock_key(path)
                .await
                .context("unlock key file")?;
        }
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "listening beyond loopback: put a TLS reverse proxy in front");
        }
        let mut state = AppState::new(vault.clone(), config.secure_cookies())
            .with_trusted_proxies(config.trusted_proxies.clone())
            .with_public_url(&vault.settings().issuer);
        if let Some(metrics_addr) = config.metrics_listen {
            let metrics = serve_metrics(metrics_addr, &vault, &state).await?;
            state = state.with_metrics(metrics);
        }
        let shutdown = shutdown_signal()?;
        // One line on stdout that scripts (and the tests) read to learn the address.
        println!("vrm-vault listening on http://{addr}");
        std::io::stdout().flush()?;
        let limits = http::serve::Limits {
            max_connections: config.max_connections as usize,
            ..http::serve::Limits::default()
        };
        http::serve_with(listener, state, limits, shutdown).await?;
        vault.flush()?;
        tracing::info!("stopped cleanly");
        Ok(ExitCode::SUCCESS)
    })
}

/// `vrm-vault relay`: serves the intent relay; `vrm-vault relay admit`: admits a brand.
fn relay(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match args.command {
        Some(RelayCommand::Admit(admit)) => {
            init_tracing(false);
            admit.nats.validate().map_err(anyhow::Error::msg)?;
            runtime.block_on(relay_admit(admit))
        }
        Some(RelayCommand::Suspend(brand)) => {
            init_tracing(false);
            runtime.block_on(relay_set_status(brand, BrandStatus::Suspended))
        }
        Some(RelayCommand::Resume(brand)) => {
            init_tracing(false);
            runtime.block_on(relay_set_status(brand, BrandStatus::Active))
        }
        None => {
            let config = args.serve;
            init_tracing(config.log_format == "json");
            config.validate().map_err(anyhow::Error::msg)?;
            runtime.block_on(relay_serve(config))
        }
    }
}

/// Admits a brand and prints `{"client_id": "..."}` on standard output (one line per brand
/// with `--batch`).
async fn relay_admit(args: AdmitArgs) -> anyhow::Result<ExitCode> {
    if let Some(batch) = &args.batch {
        return relay_admit_batch(&args.nats, batch).await;
    }
    let (Some(name), Some(jwks_file)) = (&args.name, &args.jwks) else {
        anyhow::bail!("relay admit needs --name and --jwks, or --batch FILE");
    };
    let text = std::fs::read_to_string(jwks_file)
        .with_context(|| format!("reading {}", jwks_file.display()))?;
    let jwks: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", jwks_file.display()))?;
    let relay = relay_offline(&args.nats).await?;
    let brand = relay.admit(name, &jwks).await.map_err(|e| match e {
        RelayError::Invalid { message, .. } => anyhow::anyhow!(message),
        other => anyhow::anyhow!(other.report()),
    })?;
    relay.close().await;
    println!("{}", serde_json::json!({ "client_id": brand.client_id }));
    Ok(ExitCode::SUCCESS)
}

/// `relay admit --batch FILE`: checks every line first, then admits them all on one
/// connection, printing `{"line", "client_id"}` for each brand stored, in the file's order.
async fn relay_admit_batch(
    nats: &vrm_vault::relay::config::NatsArgs,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .context("reading the batch from standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let entries = vrm_vault::relay::admit::parse_batch(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}; no brand was admitted", file.display()))?;
    let relay = relay_offline(nats).await?;
    let mut out = std::io::stdout().lock();
    let result = relay
        .admit_batch(entries, |entry, brand| {
            // A closed standard output must not stop the batch half-way: the brands are stored.
            let line = serde_json::json!({ "line": entry.line, "client_id": brand.client_id });
            let _ = writeln!(out, "{line}");
        })
        .await;
    let _ = out.flush();
    relay.close().await;
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err((line, e)) => Err(anyhow::anyhow!(
            "line {line} could not be admitted: {}; the batch stopped there. Every line that \
             was admitted is printed with its client id; the others were not admitted",
            e.report()
        )),
    }
}

/// Suspends or resumes a brand and prints `{"client_id": "...", "status": "..."}`.
async fn relay_set_status(args: BrandArgs, status: BrandStatus) -> anyhow::Result<ExitCode> {
    args.nats.validate().map_err(anyhow::Error::msg)?;
    let relay = relay_offline(&args.nats).await?;
    let brand = relay
        .set_status(&args.client_id, status)
        .await
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    relay.close().await;
    println!(
        "{}",
        serde_json::json!({ "client_id": brand.client_id, "status": brand.status })
    );
    Ok(ExitCode::SUCCESS)
}

/// A relay handle for the operator's commands: connects at once (no waiting) and binds the
/// layout.
async fn relay_offline(nats: &vrm_vault::relay::config::NatsArgs) -> anyhow::Result<Relay> {
    let client = vrm_vault::relay::nats::connect(&nats.urls, false)
        .await
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    let settings = RelaySettings {
        public_url: String::new(),
        replicas: usize::from(nats.replicas),
        allow_loopback_webhooks: false,
        trusted_proxies: Vec::new(),
        limits: Default::default(),
    };
    let relay = Relay::from_client(client, settings, Arc::new(SystemClock));
    relay
        .ensure_layout(vrm_vault::relay::nats::Existing::Keep)
        .await
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    Ok(relay)
}

async fn relay_serve(config: RelayServeArgs) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let settings = RelaySettings {
        public_url: config.public_url_on(addr),
        replicas: usize::from(config.nats.replicas),
        allow_loopback_webhooks: config.allow_loopback_webhooks,
        trusted_proxies: config.trusted_proxies.clone(),
        limits: config.limits(),
    };
    let relay = Relay::start(&config.nats.urls, settings, Arc::new(SystemClock))
        .await
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback: put a TLS reverse proxy in front");
    }
    if let Some(metrics_addr) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("binding the metrics listener {metrics_addr}"))?;
        tracing::info!(addr = %metrics.local_addr()?, "serving metrics at /metrics");
        // It ends with the process: a scrape in flight at shutdown is simply cut.
        let served = http::relay::metrics::serve(metrics, relay.clone(), std::future::pending());
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let signal = shutdown_signal()?;
    // A configuration the cluster can never serve (see `Relay::failed`) stops the relay too.
    let (failure_tx, mut failure_rx) = tokio::sync::oneshot::channel();
    let failing = relay.clone();
    let shutdown = async move {
        tokio::select! {
            () = signal => {}
            message = failing.failed() => {
                let _ = failure_tx.send(message);
            }
        }
    };
    // One line on stdout that scripts (and the tests) read to learn the address.
    println!("vrm-vault relay listening on http://{addr}");
    std::io::stdout().flush()?;
    http::relay::serve(listener, relay.clone(), shutdown).await?;
    relay.close().await;
    if let Ok(message) = failure_rx.try_recv() {
        anyhow::bail!("{message}");
    }
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Binds the metrics listener and serves `/metrics` on it until the server shuts down.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    vault: &Vault,
    state: &AppState,
) -> anyhow::Result<Arc<http::metrics::Metrics>> {
    let metrics = Arc::new(http::metrics::Metrics::new());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "serving metrics at /metrics");
    let stop = state.shutdown.requested();
    let served = http::serve_metrics(listener, metrics.clone(), vault.clone(), stop);
    tokio::spawn(async move {
        if let Err(e) = served.await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(metrics)
}

/// SIGTERM (systemd's stop) or SIGINT (Ctrl-C). The handlers are installed now, before the
/// server announces its address, so a signal sent right after start is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutting down: draining requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: draining requests");
        })
    }
}

/// Reads a passphrase from the first line of a file, or of standard input for `-`.
fn read_passphrase(path: &Path) -> anyhow::Result<Secret> {
    let mut line = String::new();
    if path == Path::new("-") {
        std::io::stdin().lock().read_line(&mut line)?;
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("reading the passphrase from {}", path.display()))?;
        std::io::BufReader::new(file).read_line(&mut line)?;
    }
    let secret = Secret::new(line.trim_end_matches(['\n', '\r']));
    Ok(secret)
}

fn init(args: config::InitArgs) -> anyhow::Result<ExitCode> {
    let data_dir = config::data_dir(args.data_dir)?;
    let passphrase = read_passphrase(&args.passphrase_file)?;
    let recovery = service::init_offline(&data_dir, &passphrase, SystemClock.now())
        .map_err(anyhow::Error::new)?;
    eprintln!(
        "Vault created in {}. Your recovery key is below: it is shown only now, and it opens the \
         vault if you forget your passphrase. Write it down and keep it somewhere safe.",
        data_dir.display()
    );
    println!("{}", recovery.expose());
    Ok(ExitCode::SUCCESS)
}

fn audit_verify(args: config::OfflineArgs) -> anyhow::Result<ExitCode> {
    let data_dir = config::data_dir(args.data_dir)?;
    let passphrase = read_passphrase(&args.passphrase_file)?;
    let (store, _, master) =
        service::open_offline(&data_dir, &passphrase).map_err(anyhow::Error::new)?;
    let checkpoint_key = vrm_vault::crypto::audit_checkpoint_key(&master);
    match service::audit::verify_store(&store, &checkpoint_key) {
        Ok(verified) => {
            println!(
                "audit log intact: {} entries, head {}",
                verified.entries, verified.head
            );
            if let Some(through) = verified.pruned_through {
                println!(
                    "the first {} entries (up to {}) were pruned under the retention policy; the \
                     vault's signed checkpoint vouches for them and the chain follows it from \
                     entry {}",
                    verified.pruned,
                    through
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    verified.pruned + 1
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("audit log BROKEN: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn unlock_key(command: UnlockKeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        UnlockKeyCommand::Create { vault, out } => {
            let data_dir = config::data_dir(vault.data_dir)?;
            let passphrase = read_passphrase(&vault.passphrase_file)?;
            let key = service::offline_unlock_key(&data_dir, &passphrase, SystemClock.now(), true)
                .map_err(anyhow::Error::new)?;
            if let Some(key) = key {
                vrm_vault::crypto::keyfile::write_atomically(&out, key.encode().as_bytes())
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            eprintln!(
                "Unlock key written to {}. Start the server with --unlock-key-file {} to unseal \
                 at boot. Anyone who can read that file and the data directory can open the vault.",
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        UnlockKeyCommand::Remove(vault) => {
            let data_dir = config::data_dir(vault.data_dir)?;
            let passphrase = read_passphrase(&vault.passphrase_file)?;
            service::offline_unlock_key(&data_dir, &passphrase, SystemClock.now(), false)
                .map_err(anyhow::Error::new)?;
            eprintln!(
                "Unlock key slot removed: existing unlock key files no longer open the vault."
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn export(args: config::OfflineArgs, out: &Path) -> anyhow::Result<ExitCode> {
    let data_dir = config::data_dir(args.data_dir)?;
    let passphrase = read_passphrase(&args.passphrase_file)?;
    let (store, _, _) =
        service::open_offline(&data_dir, &passphrase).map_err(anyhow::Error::new)?;
    let now = SystemClock.now();
    let mut writer: Box<dyn Write> = if out == Path::new("-") {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        let file =
            vrm_vault::files::create(out).with_context(|| format!("creating {}", out.display()))?;
        Box::new(std::io::BufWriter::new(file))
    };
    // Recorded first, as over HTTP: the export holds its own `vault.exported` entry.
    service::audit::record_offline(&store, "vault.exported", now).map_err(anyhow::Error::new)?;
    let counts =
        service::export::write_export(&store, now, &mut writer).map_err(anyhow::Error::new)?;
    drop(writer);
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!("Exported {}.", summary.join(", "));
    Ok(ExitCode::SUCCESS)
}

fn backup(args: config::OfflineArgs, out: &Path) -> anyhow::Result<ExitCode> {
    let data_dir = config::data_dir(args.data_dir)?;
    let passphrase = read_passphrase(&args.passphrase_file)?;
    let summary = service::backup::backup_offline(&data_dir, &passphrase, out, SystemClock.now())
        .map_err(anyhow::Error::new)?;
    eprintln!(
        "Backup written to {} ({} entries, format version {}). It is encrypted: restoring it \
         needs the passphrase or the recovery key.",
        out.display(),
        summary.entries,
        summary.format_version
    );
    Ok(ExitCode::SUCCESS)
}

fn restore(args: config::RestoreArgs) -> anyhow::Result<ExitCode> {
    let data_dir = config::data_dir(args.data_dir)?;
    let credential = match (
        args.passphrase_file,
        args.recovery_key_file,
        args.new_passphrase_file,
    ) {
        (Some(passphrase), None, None) => {
            service::backup::RestoreCredential::Passphrase(read_passphrase(&passphrase)?)
        }
        (None, Some(recovery), Some(new_passphrase)) => {
            service::backup::RestoreCredential::RecoveryKey {
                recovery_key: read_passphrase(&recovery)?,
                new_passphrase: read_passphrase(&new_passphrase)?,
            }
        }
        _ => anyhow::bail!(
            "give --passphrase-file, or --recovery-key-file with --new-passphrase-file"
        ),
    };
    let settings = Settings::new(data_dir.clone());
    let (_, _, summary) =
        service::backup::restore(&settings, &args.backup, credential, SystemClock.now())
            .map_err(anyhow::Error::new)?;
    eprintln!(
        "Restored {} entries (backup format version {}) into {}. Start the server and unlock it.",
        summary.entries,
        summary.format_version,
        data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn delete_everything(args: config::DeleteArgs) -> anyhow::Result<ExitCode> {
    init_tracing(false);
    let data_dir = config::data_dir(args.vault.data_dir)?;
    let mut settings = Settings::new(data_dir.clone());
    settings.allow_loopback_webhooks = args.allow_loopback_webhooks;
    settings.webhook_proxy = args.webhook_proxy;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let receipt = runtime.block_on(async move {
        let vault = Vault::start(settings, Arc::new(SystemClock))
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", data_dir.display()))?;
        let here = std::net::IpAddr::from([127, 0, 0, 1]);
        let passphrase = read_passphrase(&args.vault.passphrase_file)?;
        vault
            .login(service::Credential::Passphrase(passphrase.clone()), here)
            .await
            .map_err(anyhow::Error::new)?;
        vault
            .delete_everything(passphrase, &args.confirm, here)
            .await
            .map_err(anyhow::Error::new)
    })?;
    println!("{}", serde_json::to_string_pretty(&receipt)?);
    eprintln!("Everything is deleted. The receipt above lists what was deleted and who was told.");
    Ok(ExitCode::SUCCESS)
}
