//! berth: a daemonless, Docker-compatible container engine (see ../shared/design.md).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context};
use clap::Parser;

use berth_engine::auth::{AuthFile, Credentials};
use berth_engine::cli::{
    self, Cli, Command, Format, ImageCommand, ImagesArgs, LoadArgs, LoginArgs, PullArgs, RmiArgs,
    SaveArgs, SaveFormat, SystemCommand,
};
use berth_engine::content::ImageRecord;
use berth_engine::images::{familiar, ArchiveFormat, Images, Platform};
use berth_engine::reference::Reference;
use berth_engine::registry;

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line, no backtrace: `Error: open store /x: …`.
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let level: tracing::Level = cli
        .log_level
        .parse()
        .with_context(|| format!("parse --log-level {:?}", cli.log_level))?;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
    let images =
        Images::open(&cli.root).with_context(|| format!("open store {}", cli.root.display()))?;
    match cli.command {
        Command::Pull(args) | Command::Image(ImageCommand::Pull(args)) => pull(&images, &args),
        Command::Push {
            reference,
            tls_verify,
        } => push(&images, &reference, tls_verify),
        Command::Login(args) => login(&args),
        Command::Logout { server } => logout(server.as_deref()),
        Command::Load(args) | Command::Image(ImageCommand::Load(args)) => load(&images, &args),
        Command::Save(args) | Command::Image(ImageCommand::Save(args)) => save(&images, &args),
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => list(&images, &args),
        Command::Tag { source, target } | Command::Image(ImageCommand::Tag { source, target }) => {
            images.tag(&source, &target)?;
            Ok(())
        }
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => remove(&images, &args),
        Command::Image(ImageCommand::Inspect { images: names }) => inspect(&images, &names),
        Command::Image(ImageCommand::Prune) => prune(&images),
        Command::Image(ImageCommand::Mount { image }) => mount(&images, &image),
        Command::Image(ImageCommand::Unmount { image }) => unmount(&images, &image),
        Command::System(SystemCommand::Check) => check(&images),
    }
}

fn pull(images: &Images, args: &PullArgs) -> anyhow::Result<()> {
    let reference: Reference = args.reference.parse()?;
    let platform = match &args.platform {
        Some(p) => cli::parse_platform(p)
            .with_context(|| format!("parse --platform {p:?}: expected os/arch[/variant]"))?,
        None => Platform::host(),
    };
    let progress = cli::progress_for(args.quiet);
    let what = reference
        .tag()
        .map(str::to_string)
        .or_else(|| reference.digest().map(ToString::to_string))
        .unwrap_or_default();
    progress.line(&format!("{what}: Pulling from {}", reference.repository()));
    registry::pull(
        images,
        &reference,
        &platform,
        args.tls_verify,
        progress.as_ref(),
    )?;
    progress.line(&format!(
        "Status: Downloaded image for {}",
        familiar(&reference.to_string())
    ));
    println!("{}", familiar(&reference.to_string()));
    Ok(())
}

fn login(args: &LoginArgs) -> anyhow::Result<()> {
    let domain = cli::registry_domain(args.server.as_deref());
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("read password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("login: give the password with -p or --password-stdin"),
    };
    let credentials = Credentials {
        username: args.username.clone(),
        password,
    };
    registry::login(
        &AuthFile::from_env()?,
        &domain,
        &credentials,
        args.tls_verify,
    )?;
    println!("Login Succeeded");
    Ok(())
}

fn logout(server: Option<&str>) -> anyhow::Result<()> {
    let domain = cli::registry_domain(server);
    if !AuthFile::from_env()?.remove(&domain)? {
        bail!("logout: not logged in to {domain}");
    }
    println!("Removing login credentials for {domain}");
    Ok(())
}

fn push(images: &Images, name: &str, tls_verify: bool) -> anyhow::Result<()> {
    let target: Reference = name.parse()?;
    let progress = cli::progress_for(false);
    progress.line(&format!(
        "The push refers to repository [{}]",
        target.name()
    ));
    registry::push(images, name, &target, tls_verify, progress.as_ref())?;
    Ok(())
}

fn load(images: &Images, args: &LoadArgs) -> anyhow::Result<()> {
    let loaded = match &args.input {
        Some(path) if path.is_dir() => images.load_layout(path, &args.names)?,
        Some(path) => images.load_archive(path, &args.names)?,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("load: requested load from stdin, but stdin is a terminal (use -i FILE)");
            }
            images.load_archive_from(stdin.lock(), Path::new("(stdin)"), &args.names)?
        }
    };
    if loaded.is_empty() {
        bail!("load: no image in the input matched");
    }
    if !matches!(&args.input, Some(path) if path.is_dir()) {
        // An archive is streamed into the store whole: what the chosen images do not use
        // (other images, `docker save`'s per-layer json) goes now.
        images.collect_garbage()?;
    }
    for loaded in loaded {
        if args.quiet {
            println!("{}", loaded.image.id);
        } else if loaded.tags.is_empty() {
            println!("Loaded image ID: {}", loaded.image.id);
        } else {
            for tag in &loaded.tags {
                println!("Loaded image: {}", familiar(tag));
            }
        }
    }
    Ok(())
}

fn save(images: &Images, args: &SaveArgs) -> anyhow::Result<()> {
    let format = match args.format {
        SaveFormat::DockerArchive => ArchiveFormat::DockerArchive,
        SaveFormat::OciArchive => ArchiveFormat::OciArchive,
    };
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed: a failed save leaves no half archive.
            let tmp = path.with_extension("berth-tmp");
            let file =
                std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            let result = images
                .save(&args.images, format, std::io::BufWriter::new(file))
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    std::fs::rename(&tmp, path)
                        .with_context(|| format!("rename to {}", path.display()))
                });
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("save: refusing to write an archive to a terminal (use -o FILE)");
            }
            images.save(&args.images, format, stdout.lock())?;
            Ok(())
        }
    }
}

fn check(images: &Images) -> anyhow::Result<()> {
    let problems = images.check()?;
    for problem in &problems {
        println!("{problem}");
    }
    if !problems.is_empty() {
        bail!("system check: {} problems", problems.len());
    }
    Ok(())
}

fn list(images: &Images, args: &ImagesArgs) -> anyhow::Result<()> {
    let records = images.list()?;
    let rows = cli::image_rows(&records, args.reference.as_deref(), chrono::Utc::now());
    if args.quiet {
        let mut seen = BTreeSet::new();
        for row in rows.iter().filter(|r| seen.insert(r.id.clone())) {
            println!("{}", row.id);
        }
        return Ok(());
    }
    match args.format {
        Format::Table => print!("{}", cli::table(&rows, args.digests)),
        Format::Json => {
            for row in &rows {
                println!("{}", serde_json::to_string(row)?);
            }
        }
    }
    Ok(())
}

fn inspect(images: &Images, names: &[String]) -> anyhow::Result<()> {
    let mut docs = Vec::new();
    for name in names {
        let image = images.lookup(name)?;
        let (_, config) = images.manifest_and_config(&image)?;
        let manifest_size = std::fs::metadata(images.content().blob_path(&image.manifest))
            .map(|m| m.len())
            .unwrap_or_default();
        docs.push(cli::inspect_json(&image, &config, manifest_size));
    }
    println!("{}", serde_json::to_string_pretty(&docs)?);
    Ok(())
}

fn remove(images: &Images, args: &RmiArgs) -> anyhow::Result<()> {
    for name in &args.images {
        for line in images.remove(name, args.force)? {
            println!("{line}");
        }
    }
    images.collect_garbage()?;
    Ok(())
}

fn prune(images: &Images) -> anyhow::Result<()> {
    let dangling: Vec<ImageRecord> = images
        .list()?
        .into_iter()
        .filter(|i| {
            i.repo_tags.is_empty()
                && images
                    .snapshots()
                    .image_mounted_at(&i.id)
                    .is_ok_and(|m| m.is_none())
        })
        .collect();
    for image in dangling {
        for line in images.remove(&image.id.to_string(), false)? {
            println!("{line}");
        }
    }
    let (blobs, layers) = images.collect_garbage()?;
    println!("Removed {blobs} blobs and {layers} layers");
    Ok(())
}

fn mount(images: &Images, name: &str) -> anyhow::Result<()> {
    let image = images.lookup(name)?;
    let target = images
        .snapshots()
        .mount_image(&image.id, &image.chain_ids)?;
    println!("{}", target.display());
    Ok(())
}

fn unmount(images: &Images, name: &str) -> anyhow::Result<()> {
    let image = images.lookup(name)?;
    if images.snapshots().unmount_image(&image.id)?.is_none() {
        bail!("unmount image {name}: not mounted");
    }
    println!("{}", image.id);
    Ok(())
}
