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
}

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error(transparent)]
    Init(#[from] crate::init::InitError),
    #[error("starting {node}: {source}")]
    Spawn {
        node: String,
        source: std::io::Error,
    },
    #[error("{node} exited ({status}); its log is {log}")]
    Exited {
        node: String,
        status: std::process::ExitStatus,
        log: String,
    },
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
        })?;
    }
    println!(
        "devnet: {} validators in {}{}",
        options.validators,
        dir.display(),
        if fresh { "" } else { " (resumed)" }
    );
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let names: Vec<String> = (0..options.validators)
        .map(|i| format!("node-{i}"))
        .chain((0..options.full_nodes).map(|j| format!("full-{j}")))
        .collect();
    for name in &names {
        let node_dir = dir.join(name);
        if !node_dir.join("node.toml").exists() {
            return Err(DevnetError::Io(std::io::Error::other(format!(
                "{} has no node.toml (was this network made with fewer nodes?)",
                node_dir.display()
            ))));
        }
        let log_path = node_dir.join("node.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut command = Command::new(&exe);
        // SAFETY: prctl is async-signal-safe and touches only the child.
        // The validator gets SIGTERM if this process dies, however it dies,
        // so no orphaned validators hold the ports.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command
            .args(["run", "--config"])
            .arg(node_dir.join("node.toml"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DevnetError::Spawn {
                node: name.clone(),
                source,
            })?;
        children.push((child, log_path));
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
    let clients: Vec<Client> = rpcs
        .iter()
        .map(|url| Client::new(url).expect("valid URL"))
        .collect();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = term.recv() => break Ok(()),
            _ = tick.tick() => {}
        }
        for (index, (child, log)) in children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                break_on_exit(&names[index], status, log)?;
            }
        }
        let mut heights = Vec::new();
        for client in &clients {
            heights.push(client.height().await.ok());
        }
        let shown: Vec<String> = heights
            .iter()
            .map(|h| h.map_or("-".into(), |h| h.to_string()))
            .collect();
        if options.full_nodes > 0 {
            let (v, f) = shown.split_at(options.validators);
            println!(
                "finalized heights: {}  | full: {}",
                v.join(" "),
                f.join(" ")
            );
        } else {
            println!("finalized heights: {}", shown.join(" "));
        }
        if let Some(target) = options.until_height
            && heights.iter().all(|h| h.is_some_and(|h| h >= target))
        {
            println!("every node finalized height {target}");
            break Ok(());
        }
    };
    for (child, _) in &children {
        terminate(child);
    }
    for (child, _) in &mut children {
        let stopped = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        if stopped.is_err() {
            let _ = child.kill().await;
        }
    }
    outcome
}

fn break_on_exit(
    node: &str,
    status: std::process::ExitStatus,
    log: &std::path::Path,
) -> Result<(), DevnetError> {
    Err(DevnetError::Exited {
        node: node.to_string(),
        status,
        log: log.display().to_string(),
    })
}
