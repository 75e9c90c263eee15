//! berth-runtime: runc's command line over the berth runtime library.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};
use berth_runtime::cli::{Cli, Command, LogFormat};
use berth_runtime::process::CreateOptions;
use berth_runtime::{container, default_spec, logging};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("berth-runtime version {}", env!("CARGO_PKG_VERSION"));
        println!(
            "commit: {}",
            option_env!("BERTH_COMMIT").unwrap_or("unknown")
        );
        println!("spec: 1.2.0");
        return ExitCode::SUCCESS;
    }
    let to_file = cli.log.is_some();
    if let Err(e) = logging::Logger::install(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!(
            "berth-runtime: open log {}: {e}",
            cli.log
                .as_deref()
                .unwrap_or(std::path::Path::new("-"))
                .display()
        );
        return ExitCode::FAILURE;
    }
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            // Our errors carry their cause in their own text: print the top one only.
            let msg = format!("{e}");
            // containerd's shim reports the last error line of the log file; a person at a
            // terminal reads stderr. With the log on stderr, one line is enough.
            tracing::error!("{msg}");
            if to_file || cli.log_format == LogFormat::Json {
                eprintln!("berth-runtime: {msg}");
            }
            ExitCode::FAILURE
        }
    }
}

fn create_options(c: &berth_runtime::cli::CreateArgs) -> CreateOptions {
    CreateOptions {
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        no_pivot: c.no_pivot,
        no_new_keyring: c.no_new_keyring,
        preserve_fds: c.preserve_fds,
    }
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup: berth-runtime manages cgroups through cgroupfs only; there is no systemd driver");
    }
    let Some(command) = &cli.command else {
        bail!("no command given: try --help");
    };
    let root = &cli.root;
    match command {
        Command::Spec(a) => {
            let path = a.bundle.join("config.json");
            if path.exists() {
                bail!("{} exists: remove it first", path.display());
            }
            let text = serde_json::to_string_pretty(&default_spec::default_spec(a.rootless))?;
            std::fs::write(&path, text + "\n")
                .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
        }
        Command::Create(a) => container::create(root, &a.id, &a.bundle, &create_options(a))?,
        Command::Start(a) => container::start(root, &a.id)?,
        Command::Run(a) => {
            let code = container::run(
                root,
                &a.create.id,
                &a.create.bundle,
                &create_options(&a.create),
                a.detach,
                a.keep,
            )?;
            return Ok(code);
        }
        Command::State(a) => {
            let st = container::state(root, &a.id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        Command::Kill(a) => {
            let sig = container::parse_signal(&a.signal)?;
            container::kill(root, &a.id, sig, a.all)?;
        }
        Command::Delete(a) => container::delete(root, &a.id, a.force)?,
        Command::List(a) => {
            let list = container::list(root)?;
            let mut out = std::io::stdout().lock();
            if a.quiet {
                for st in &list {
                    writeln!(out, "{}", st.id)?;
                }
            } else if a.format == "json" {
                let v: Vec<_> = list.iter().map(|s| s.spec_json()).collect();
                writeln!(out, "{}", serde_json::to_string(&v)?)?;
            } else if a.format == "table" {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<10} {:<40} {:<31} OWNER",
                    "ID", "PID", "STATUS", "BUNDLE", "CREATED"
                )?;
                for s in &list {
                    let owner = if s.owner.is_empty() { "root" } else { &s.owner };
                    writeln!(
                        out,
                        "{:<24} {:<8} {:<10} {:<40} {:<31} {owner}",
                        s.id,
                        s.pid,
                        s.status,
                        s.bundle.display(),
                        s.created
                    )?;
                }
            } else {
                bail!("--format {:?}: use table or json", a.format);
            }
        }
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&default_spec::features())?
        ),
    }
    Ok(0)
}
