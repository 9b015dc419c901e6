//! `hotfixd`: parse, wire, serve. No logic lives here.
#![forbid(unsafe_code)]

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use hotfixd::clock::SystemClock;
use hotfixd::config::{Args, AuditCommand, Command, DEV_ROSTER, TokenCommand};
use tokio_util::sync::CancellationToken;

/// mimalloc: glibc's malloc and free were a sixth of a transition's CPU
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::Man { dir }) = &args.command {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        clap_mangen::generate_to(<Args as clap::CommandFactory>::command(), dir)
            .with_context(|| format!("writing the man pages into {}", dir.display()))?;
        return Ok(());
    }
    if let Some(Command::Token {
        command: TokenCommand::New { handle, roles },
    }) = &args.command
    {
        for r in roles {
            if hotfixd::domain::Role::parse(r).is_none() {
                anyhow::bail!(
                    "--role {r}: not a role (engineer, sre-lead, eng-manager, platform-admin, platform-team, service)"
                );
            }
        }
        let (token, hash) = hotfixd::auth::new_token();
        println!("token (give it to {handle}; it is not stored anywhere): {token}");
        println!();
        println!("[[principals]]");
        println!("handle = \"{handle}\"");
        let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        println!("roles = [{}]", roles.join(", "));
        println!("token_sha256 = \"{hash}\"");
        return Ok(());
    }

    if let Some(Command::Audit {
        command: AuditCommand::Keygen { name, out },
    }) = &args.command
    {
        let key = hotfix_api::audit::SigningKey::generate(name, rand::random())
            .map_err(anyhow::Error::msg)
            .context("--name")?;
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(out)
                .with_context(|| format!("--out {}", out.display()))?
        };
        use std::io::Write;
        writeln!(f, "{}", key.encode())?;
        f.sync_all()?;
        println!(
            "signing key written to {} (a secret: give it to hotfixd with --audit-key-file)",
            out.display()
        );
        println!("verifier key (publish it; `audit verify --key` checks checkpoints with it):");
        println!("{}", key.verifier().encode());
        return Ok(());
    }

    if let Some(Command::Audit {
        command: AuditCommand::Verify { data_dir, key },
    }) = &args.command
    {
        if !data_dir.is_dir() {
            anyhow::bail!("--data-dir {}: not a directory", data_dir.display());
        }
        let key = key
            .as_ref()
            .map(|p| {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("--key {}", p.display()))?;
                hotfix_api::audit::VerifierKey::parse(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("--key {}", p.display()))
            })
            .transpose()?;
        let r = hotfixd::store::verify_audit_dir(data_dir, key.as_ref()).with_context(|| {
            format!(
                "reading {} (in use by a running hotfixd? verify a copy)",
                data_dir.display()
            )
        })?;
        match &r.first_bad {
            None => {
                println!(
                    "audit chain intact: {} records, head {}",
                    r.verified, r.head
                );
                return Ok(());
            }
            Some((seq, why)) => {
                println!(
                    "audit chain BROKEN at record {seq}: {why}\n{} records before it verified (head {})",
                    r.verified, r.head
                );
                std::process::exit(1);
            }
        }
    }

    if let Some(Command::Migrate {
        from_data_dir,
        from_etcd,
        to_data_dir,
        ..
    }) = &args.command
    {
        hotfixd::server::private_files();
        let etcd = args.etcd_settings().map_err(anyhow::Error::msg)?;
        let now = hotfixd::clock::Clock::now(&SystemClock);
        let (moved, from, to, retire) = match (from_data_dir, to_data_dir) {
            (Some(dir), _) => (
                hotfixd::migrate::to_etcd(dir, &etcd, now).await,
                format!("--from-data-dir {}", dir.display()),
                format!("etcd under {}", etcd.prefix),
                format!(
                    "start the replicas with --store etcd; move {} away so that nothing starts on it",
                    dir.display()
                ),
            ),
            (None, Some(dir)) if *from_etcd => (
                hotfixd::migrate::from_etcd(&etcd, dir, now).await,
                format!("etcd under {}", etcd.prefix),
                dir.display().to_string(),
                format!(
                    "start hotfixd with --data-dir {}; once it serves, delete the etcd copy \
                     (etcdctl del --prefix {})",
                    dir.display(),
                    etcd.prefix
                ),
            ),
            _ => unreachable!("clap requires one source and one destination"),
        };
        let moved = moved.with_context(|| format!("migrating {from} to {to}"))?;
        println!(
            "migrated {from} to {to}: {}, verified\nnext: {retire}",
            moved.header.mark
        );
        return Ok(());
    }

    if let Some(Command::Restore { data_dir, file }) = &args.command {
        hotfixd::server::private_files();
        let backup = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let h = hotfixd::store::backup::restore(data_dir, &backup)
            .with_context(|| format!("restoring {} into {}", file.display(), data_dir.display()))?;
        println!(
            "restored {} into {}: {}, taken by @{} at {}",
            file.display(),
            data_dir.display(),
            h.mark,
            h.taken_by,
            h.taken_at.to_rfc3339()
        );
        return Ok(());
    }

    {
        use std::io::IsTerminal;
        let logs = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
            .with_writer(hotfixd::redact::Writer)
            // Colour codes only for a person at a terminal, never into a
            // file or a pipe.
            .with_ansi(std::io::stderr().is_terminal());
        match args.log_format {
            hotfixd::config::LogFormat::Text => logs.init(),
            hotfixd::config::LogFormat::Json => logs.json().init(),
        }
    }
    hotfixd::server::no_huge_pages();
    hotfixd::server::private_files();

    let settings = args.settings().map_err(anyhow::Error::msg)?;
    // Before anything is opened (which creates the directory).
    let resuming = settings.dev && holds_a_store(&settings.data_dir);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    if settings.dev {
        eprintln!(
            "hotfixd --dev: listening on {addr}, data in {}",
            settings.data_dir.display()
        );
        if resuming {
            eprintln!(
                "resuming the hotfixes already in {0}: delete that directory (or give \
                 --data-dir) to start afresh",
                settings.data_dir.display()
            );
        }
        eprintln!("demo roster (token = dev-<handle>):");
        for (handle, role) in DEV_ROSTER {
            eprintln!("  {handle:<7} {role:<15} HOTFIXCTL_TOKEN=dev-{handle}");
        }
        eprintln!("try: HOTFIXCTL_TOKEN=dev-bob hotfixctl report");
    }

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            shutdown.cancel();
        }
    });
    hotfixd::serve(listener, settings, Arc::new(SystemClock), shutdown).await?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Whether `dir` holds a store from an earlier run (anything in it).
fn holds_a_store(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}
