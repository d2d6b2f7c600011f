//! `ballast devnet`: a local network of separate validator processes on
//! loopback, in one command.

use crate::client::Client;
use crate::config::Timeouts;
use crate::init::{InitOptions, init};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct DevnetOptions {
    pub validators: usize,
    pub full_nodes: usize,
    /// Where the network lives; a fresh temporary directory if `None`.
    pub dir: Option<PathBuf>,
    pub p2p_port: u16,
    pub rpc_port: u16,
    pub accounts: usize,
    /// Exit (successfully) once every validator has finalized this height.
    pub until_height: Option<u64>,
    /// Restart a node that died, from its data, this long after it died
    /// (`None`: leave it down until `ballast devnet restart N`).
    pub restart_crashed_secs: Option<u64>,
    /// What a fresh devnet's validators vote with.
    pub scheme: crate::genesis::ConsensusScheme,
}

/// What `ballast devnet kill N` / `restart N` do to a running devnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// SIGKILL, as a power cut would: no clean shutdown.
    Kill,
    /// Start it again from its data, if it is down.
    Restart,
}

/// The file a running devnet polls for a restart request of one node.
const RESTART_REQUEST: &str = "restart-requested";
/// The file a running devnet writes each node's process id to.
const PID_FILE: &str = "node.pid";

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    #[error("starting {node}: {source}")]
    Spawn {
        node: String,
        source: std::io::Error,
    },
    #[error("{0} is not a node of the devnet in {1} (no node.toml there)")]
    NoSuchNode(String, String),
    #[error("{0} is not running (no process id recorded, or it already exited)")]
    NotRunning(String),
    #[error(
        "{what} port {port} is taken (another devnet running?); choose others with --p2p-port / --rpc-port"
    )]
    PortTaken { what: &'static str, port: u16 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Fails early, with a clear message, if a port the network needs is taken.
fn check_ports(options: &DevnetOptions) -> Result<(), DevnetError> {
    for i in 0..options.validators as u16 {
        let port = options.p2p_port + i;
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return Err(DevnetError::PortTaken { what: "QUIC", port });
        }
        let port = options.rpc_port + i;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(DevnetError::PortTaken { what: "RPC", port });
        }
    }
    for j in 0..options.full_nodes as u16 {
        let port = options.rpc_port + options.validators as u16 + j;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(DevnetError::PortTaken { what: "RPC", port });
        }
    }
    Ok(())
}

/// Sends SIGTERM (a graceful stop) to a child process.
fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

/// Acts on a devnet that runs in `dir` (from another terminal).
/// `node` is a validator's index (`1` is `node-1`) or a node's name
/// (`full-0`).
pub fn control(dir: &std::path::Path, node: &str, action: Control) -> Result<(), DevnetError> {
    let name = match node.parse::<usize>() {
        Ok(index) => format!("node-{index}"),
        Err(_) => node.to_string(),
    };
    let node_dir = dir.join(&name);
    if !node_dir.join("node.toml").exists() {
        return Err(DevnetError::NoSuchNode(name, dir.display().to_string()));
    }
    match action {
        Control::Kill => {
            let pid = std::fs::read_to_string(node_dir.join(PID_FILE))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .ok_or_else(|| DevnetError::NotRunning(name.clone()))?;
            // SAFETY: kill(2) with a pid read from our own pid file; at
            // worst it fails with ESRCH.
            if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
                return Err(DevnetError::NotRunning(name));
            }
            println!("{name} (pid {pid}) killed with SIGKILL; the devnet shows it as down");
        }
        Control::Restart => {
            std::fs::write(node_dir.join(RESTART_REQUEST), b"")?;
            println!("asked the devnet to restart {name} from its data (within a second)");
        }
    }
    Ok(())
}

/// One node process the devnet runs, while it is up.
struct NodeProcess {
    name: String,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    down_since: Option<std::time::Instant>,
    /// Its share of the machine's cores for parallel execution: every node
    /// runs here, so one per core each would only add threads (measured:
    /// 4 validators on 2 cores finalized 3,604 tx/s with 1 thread each and
    /// 3,349 with 2, results/node.md). `BALLAST_EXECUTION_THREADS` wins.
    execution_threads: usize,
}

impl NodeProcess {
    fn spawn(&mut self, exe: &std::path::Path) -> Result<(), DevnetError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(exe);
        // SAFETY: prctl is async-signal-safe and touches only the child.
        // The validator gets SIGTERM if this process dies, however it dies,
        // so no orphaned validators hold the ports.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        if std::env::var_os("BALLAST_EXECUTION_THREADS").is_none() {
            command.env(
                "BALLAST_EXECUTION_THREADS",
                self.execution_threads.to_string(),
            );
        }
        let child = command
            .args(["run", "--config"])
            .arg(self.dir.join("node.toml"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DevnetError::Spawn {
                node: self.name.clone(),
                source,
            })?;
        if let Some(pid) = child.id() {
            std::fs::write(self.dir.join(PID_FILE), pid.to_string())?;
        }
        let _ = std::fs::remove_file(self.dir.join(RESTART_REQUEST));
        self.child = Some(child);
        self.down_since = None;
        Ok(())
    }

    /// Notices an exit: the node is then shown as down, and the others
    /// carry on (a devnet is for watching exactly that).
    fn reap(&mut self, restart_crashed_secs: Option<u64>) -> Result<(), DevnetError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let Some(status) = child.try_wait()? else {
            return Ok(());
        };
        self.child = None;
        self.down_since = Some(std::time::Instant::now());
        let _ = std::fs::remove_file(self.dir.join(PID_FILE));
        let next = match restart_crashed_secs {
            Some(secs) => format!("restarting it in {secs} s"),
            None => format!(
                "`ballast devnet restart {}` starts it again",
                self.short_name()
            ),
        };
        println!(
            "{} exited ({status}); the others carry on; {next}; its log is {}",
            self.name,
            self.log.display()
        );
        Ok(())
    }

    /// Starts it again if it is down and a restart is due or asked for.
    fn maybe_restart(
        &mut self,
        exe: &std::path::Path,
        restart_crashed_secs: Option<u64>,
    ) -> Result<(), DevnetError> {
        let Some(down_since) = self.down_since else {
            let _ = std::fs::remove_file(self.dir.join(RESTART_REQUEST));
            return Ok(());
        };
        let requested = self.dir.join(RESTART_REQUEST).exists();
        let due = restart_crashed_secs
            .is_some_and(|secs| down_since.elapsed() >= Duration::from_secs(secs));
        if requested || due {
            println!("{}: restarting from its data", self.name);
            self.spawn(exe)?;
        }
        Ok(())
    }

    /// What `ballast devnet kill/restart` take: a validator's index, or a
    /// full node's name.
    fn short_name(&self) -> &str {
        self.name.strip_prefix("node-").unwrap_or(&self.name)
    }
}

pub async fn devnet(options: DevnetOptions) -> Result<(), DevnetError> {
    check_ports(&options)?;
    let (dir, _temporary) = match &options.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("ballast-devnet-")
                .tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let fresh = !dir.join("genesis.toml").exists();
    if fresh {
        init(&InitOptions {
            dir: dir.clone(),
            validators: options.validators,
            full_nodes: options.full_nodes,
            chain_id: 1,
            accounts: options.accounts,
            account_balance: 1_000_000_000_000,
            host: [127, 0, 0, 1].into(),
            p2p_port: options.p2p_port,
            rpc_port: options.rpc_port,
            timeouts: Timeouts::default(),
            scheme: options.scheme,
        })?;
    }
    println!(
        "devnet: {} validators in {}{}",
        options.validators,
        dir.display(),
        if fresh { "" } else { " (resumed)" }
    );
    let exe = std::env::current_exe()?;
    let names: Vec<String> = (0..options.validators)
        .map(|i| format!("node-{i}"))
        .chain((0..options.full_nodes).map(|j| format!("full-{j}")))
        .collect();
    let mut nodes = Vec::with_capacity(names.len());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let execution_threads = (cores / names.len()).max(1);
    for name in &names {
        let node_dir = dir.join(name);
        if !node_dir.join("node.toml").exists() {
            return Err(DevnetError::Io(std::io::Error::other(format!(
                "{} has no node.toml (was this network made with fewer nodes?)",
                node_dir.display()
            ))));
        }
        let mut node = NodeProcess {
            name: name.clone(),
            log: node_dir.join("node.log"),
            dir: node_dir,
            child: None,
            down_since: None,
            execution_threads,
        };
        node.spawn(&exe)?;
        nodes.push(node);
    }
    let rpcs: Vec<String> = (0..names.len())
        .map(|i| format!("http://127.0.0.1:{}", usize::from(options.rpc_port) + i))
        .collect();
    println!(
        "RPC: {}  (validator 0; the other validators: {})",
        rpcs[0],
        rpcs[1..options.validators].join(" ")
    );
    if options.full_nodes > 0 {
        println!("full nodes' RPC: {}", rpcs[options.validators..].join(" "));
    }
    println!(
        "accounts: {}/accounts/account-N.key (funded at genesis)",
        dir.display()
    );
    println!(
        "logs: {}/node-N/node.log (full nodes: full-N); Ctrl-C stops the network",
        dir.display()
    );
    println!(
        "try a crash: `ballast devnet kill N --dir {}` (SIGKILL), then `ballast devnet restart N --dir {}`",
        dir.display(),
        dir.display()
    );
    let clients: Vec<Client> = rpcs
        .iter()
        .map(|url| Client::new(url).expect("valid URL"))
        .collect();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome: Result<(), DevnetError> = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = term.recv() => break Ok(()),
            _ = tick.tick() => {}
        }
        for node in &mut nodes {
            node.reap(options.restart_crashed_secs)?;
            node.maybe_restart(&exe, options.restart_crashed_secs)?;
        }
        // Each node's finalized height and view; a node that is down, or
        // up but not answering yet, has neither.
        let mut heights = Vec::new();
        let mut views = Vec::new();
        for (node, client) in nodes.iter().zip(&clients) {
            let head = match node.child {
                Some(_) => client.head().await.ok(),
                None => None,
            };
            let field = |name: &str| head.as_ref().and_then(|h| h[name].as_u64());
            heights.push(field("height"));
            views.push(field("view"));
        }
        let show = |values: &[Option<u64>]| -> Vec<String> {
            values
                .iter()
                .zip(&nodes)
                .map(|(value, node)| match (value, &node.child) {
                    (_, None) => "down".into(),
                    (Some(value), _) => value.to_string(),
                    (None, _) => "-".into(),
                })
                .collect()
        };
        let (shown, shown_views) = (show(&heights), show(&views));
        let validator_views = shown_views[..options.validators].join(" ");
        if options.full_nodes > 0 {
            let (v, f) = shown.split_at(options.validators);
            println!(
                "finalized heights: {}  | full: {}  | views: {validator_views}",
                v.join(" "),
                f.join(" ")
            );
        } else {
            println!(
                "finalized heights: {}  | views: {validator_views}",
                shown.join(" ")
            );
        }
        if let Some(target) = options.until_height
            && heights.iter().all(|h| h.is_some_and(|h| h >= target))
        {
            println!("every node finalized height {target}");
            break Ok(());
        }
    };
    for child in nodes.iter().filter_map(|n| n.child.as_ref()) {
        terminate(child);
    }
    for node in &mut nodes {
        if let Some(child) = node.child.as_mut() {
            let stopped = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            if stopped.is_err() {
                let _ = child.kill().await;
            }
        }
        let _ = std::fs::remove_file(node.dir.join(PID_FILE));
    }
    outcome
}
