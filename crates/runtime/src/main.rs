//! berth-runtime: runc's command line over the berth runtime library.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};
use berth_runtime::cli::{Cli, Command, LogFormat};
use berth_runtime::process::exec::ExecOptions;
use berth_runtime::process::CreateOptions;
use berth_runtime::{container, default_spec, logging};
use clap::Parser;
use oci_spec::runtime::Process;

fn main() -> ExitCode {
    let cli = Cli::parse();
    berth_runtime::rootless::is_rootless();
    if cli.version {
        println!("berth-runtime version {}", env!("CARGO_PKG_VERSION"));
        println!(
            "commit: {}",
            option_env!("BERTH_COMMIT").unwrap_or("unknown")
        );
        println!("spec: 1.2.0");
        return ExitCode::SUCCESS;
    }
    // Before we open anything ourselves (the log file would take descriptor 3).
    let preserved = match &cli.command {
        Some(Command::Create(a)) => a.preserve_fds,
        Some(Command::Run(a)) => a.create.preserve_fds,
        Some(Command::Exec(a)) => a.preserve_fds,
        _ => 0,
    };
    if let Err(e) = check_preserved(preserved) {
        eprintln!("berth-runtime: {e}");
        return ExitCode::FAILURE;
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

/// --preserve-fds N hands descriptors 3..3+N to the container: they must be the caller's. A
/// number the caller did not open could later be one of ours (the state lock, the sync socket).
fn check_preserved(n: u32) -> Result<()> {
    for fd in 3..3 + n as i32 {
        if !berth_sys::process::fd_is_open(fd) {
            bail!("--preserve-fds {n}: descriptor {fd} is not open");
        }
    }
    Ok(())
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup: berth-runtime manages cgroups through cgroupfs only; there is no systemd driver");
    }
    let Some(command) = &cli.command else {
        bail!("no command given: try --help");
    };
    let root = &cli
        .root
        .clone()
        .unwrap_or_else(berth_runtime::rootless::default_root);
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
        Command::Start(a) => {
            container::start(root, &a.id)?;
        }
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
        Command::Exec(a) => {
            let st = container::state(root, &a.id)?;
            let mut bundle = berth_runtime::spec::load(std::path::Path::new(
                st["bundle"].as_str().unwrap_or_default(),
            ))?;
            bundle.prepare_seccomp(Some(&root.join(berth_runtime::seccomp::CACHE_DIR)))?;
            let opts = ExecOptions {
                seccomp: bundle.seccomp,
                process: exec_process(&bundle.spec, a)?,
                console_socket: a.console_socket.clone(),
                pid_file: a.pid_file.clone(),
                preserve_fds: a.preserve_fds,
                sub_cgroup: a.cgroup.clone(),
            };
            return Ok(container::exec(root, &a.id, &opts, a.detach)?);
        }
        Command::Pause(a) => container::freeze(root, &a.id, true)?,
        Command::Resume(a) => container::freeze(root, &a.id, false)?,
        Command::Ps(a) => {
            let json = match a.format.as_str() {
                "json" => true,
                "table" => false,
                f => bail!("--format {f:?}: use table or json"),
            };
            print!("{}", container::ps(root, &a.id, json, &a.ps_args)?);
            if json {
                println!();
            }
        }
        Command::Events(a) => {
            if a.stats {
                println!("{}", container::stats(root, &a.id)?);
            } else {
                container::events(root, &a.id, parse_duration(&a.interval)?)?;
            }
        }
        Command::Update(a) => container::update(root, &a.id, &update_resources(a)?)?,
    }
    Ok(0)
}

/// The process for `exec`: a process.json, or the container's own process with the command
/// line's changes (as runc builds it).
fn exec_process(
    spec: &oci_spec::runtime::Spec,
    a: &berth_runtime::cli::ExecArgs,
) -> Result<Process> {
    if let Some(path) = &a.process {
        let bytes =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        return serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()));
    }
    if a.command.is_empty() {
        bail!("exec: give a command, or --process");
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let bad = || anyhow::anyhow!("--user {u:?}: use uid[:gid]");
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        user.set_uid(uid.parse().map_err(|_| bad())?);
        user.set_gid(gid.parse().map_err(|_| bad())?);
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let mut added = oci_spec::runtime::Capabilities::new();
        for c in &a.cap {
            let cap = serde_json::from_value(serde_json::json!(c))
                .map_err(|_| anyhow::anyhow!("--cap {c:?}: unknown capability"))?;
            added.insert(cap);
        }
        let with = |set: &Option<oci_spec::runtime::Capabilities>| {
            Some(
                set.clone()
                    .unwrap_or_default()
                    .union(&added)
                    .copied()
                    .collect(),
            )
        };
        caps.set_bounding(with(caps.bounding()));
        caps.set_effective(with(caps.effective()));
        caps.set_permitted(with(caps.permitted()));
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// `5s`, `100ms`, `2m`, or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("--interval {s:?}: use e.g. 5s or 500ms"))?;
    Ok(match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        _ => bail!("--interval {s:?}: use e.g. 5s or 500ms"),
    })
}

/// `64m`, `1g`, `1024` (bytes), `-1` (unlimited).
fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let lower = s.to_ascii_lowercase();
    let t = lower.trim_end_matches('b');
    let (n, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: i64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} {s:?}: use bytes or a size like 64m"))?;
    Ok(if n < 0 { -1 } else { n * mult })
}

/// The resources for `update`: `--resources FILE|-` as LinuxResources JSON, or the flags.
fn update_resources(
    a: &berth_runtime::cli::UpdateArgs,
) -> Result<oci_spec::runtime::LinuxResources> {
    use serde_json::{json, Map, Value};
    if let Some(path) = &a.resources {
        let bytes = if path.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
            b
        } else {
            std::fs::read(path).map_err(|e| anyhow::anyhow!("read {}: {e}", path.display()))?
        };
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        return serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("--resources: {}: {}", e.path(), e.inner()));
    }
    let mut memory = Map::new();
    for (key, flag, v) in [
        ("limit", "--memory", &a.memory),
        ("reservation", "--memory-reservation", &a.memory_reservation),
        ("swap", "--memory-swap", &a.memory_swap),
    ] {
        if let Some(v) = v {
            memory.insert(key.into(), json!(parse_size(flag, v)?));
        }
    }
    let mut cpu = Map::new();
    let numbers = [
        ("shares", a.cpu_shares.map(|v| v as i64)),
        ("quota", a.cpu_quota),
        ("period", a.cpu_period.map(|v| v as i64)),
    ];
    for (key, v) in numbers {
        if let Some(v) = v {
            cpu.insert(key.into(), json!(v));
        }
    }
    for (key, v) in [("cpus", &a.cpuset_cpus), ("mems", &a.cpuset_mems)] {
        if let Some(v) = v {
            cpu.insert(key.into(), json!(v));
        }
    }
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(v) = a.pids_limit {
        r.insert("pids".into(), json!({"limit": v}));
    }
    if let Some(v) = a.blkio_weight {
        r.insert("blockIO".into(), json!({"weight": v}));
    }
    Ok(serde_json::from_value(Value::Object(r))?)
}
