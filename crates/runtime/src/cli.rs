//! The command line: runc's commands and flags, so containerd and Docker can drive us as runc.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    about = "An OCI runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version, the commit and the runtime-spec version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Root directory for the containers' state (default /run/berth-runtime as root,
    /// $XDG_RUNTIME_DIR/berth-runtime otherwise).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Write the log to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text, or json (one `{"level","msg","time"}` object a line, as containerd reads).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug lines too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (refused: this runtime drives cgroupfs only).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility ("true", "false" or "auto"); rootless is detected.
    #[arg(long = "rootless", num_args = 0..=1, default_missing_value = "true")]
    pub rootless_mode: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new specification file (config.json).
    Spec(SpecArgs),
    /// Create a container: everything but the user process, which waits for `start`.
    Create(CreateArgs),
    /// Let a created container's process run.
    Start(IdArgs),
    /// Create and start a container, then wait for it (unless --detach).
    Run(RunArgs),
    /// Print a container's state as JSON.
    State(IdArgs),
    /// Send a signal to a container's init process.
    Kill(KillArgs),
    /// Delete a container and everything it holds.
    Delete(DeleteArgs),
    /// List the containers.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Print the features this runtime supports (runtime-spec features.json).
    Features,
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// Freeze every process of the container.
    Pause(IdArgs),
    /// Thaw a paused container.
    Resume(IdArgs),
    /// List the container's processes (`ps` output, or `--format json`: the pids).
    Ps(PsArgs),
    /// Print the container's resource usage (`--stats`: once).
    Events(EventsArgs),
    /// Change the container's resource limits.
    Update(UpdateArgs),
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    pub id: String,
    /// The command and its arguments (unless --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A runtime-spec process.json describing the process.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    /// Give the process a terminal (its master goes to --console-socket).
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// KEY=VALUE added to the environment.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// A capability to add (CAP_NET_ADMIN).
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// A sub-cgroup of the container's to run the process in.
    #[arg(long)]
    pub cgroup: Option<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    pub id: String,
    /// table (ps's own output) or json (the pids).
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Arguments for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    pub id: String,
    /// Print the statistics once and exit.
    #[arg(long)]
    pub stats: bool,
    /// Seconds between two statistics in the stream.
    #[arg(long, default_value = "5s")]
    pub interval: String,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// A LinuxResources JSON file, or - for stdin (as containerd sends it).
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(short, long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub memory_reservation: Option<String>,
    #[arg(long)]
    pub memory_swap: Option<String>,
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Bundle directory to write config.json into.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A specification for a rootless container.
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    /// Bundle directory (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to, when process.terminal is set.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root (for a ramfs root): move the rootfs onto / and chroot.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra descriptors (3, 4, ...) into the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container runs, without waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    pub id: String,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    pub id: String,
    /// Signal name (TERM, SIGKILL) or number; SIGTERM by default.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process of the container, not only its init.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub id: String,
    /// Kill the container first if it runs; succeed if it does not exist.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format: table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print the container ids only.
    #[arg(short, long)]
    pub quiet: bool,
}
