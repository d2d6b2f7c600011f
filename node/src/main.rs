//! `ballast`: the production node and its tools.
// The node is the real world: wall clock, threads, OS randomness and hash
// maps (in dependencies) are what it runs on. Only `core/` and `sim/` are
// held to determinism.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use ballast_core::Digest;
use ballast_core::ledger::tx::Action;
use ballast_node::bench::{BenchOptions, bench};
use ballast_node::client::{Client, signed};
use ballast_node::config::{NodeConfig, Timeouts, read_key, write_key};
use ballast_node::devnet::{Control, DevnetOptions, control, devnet};
use ballast_node::genesis::{ConsensusScheme, Genesis, parse_hex32};
use ballast_node::init::{InitOptions, init};
use clap::{Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Ballast: a proof-of-stake BFT chain. This binary runs a validator,
/// makes networks, and talks to nodes over JSON-RPC.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do to one node of a running devnet.
#[derive(Subcommand)]
enum DevnetAction {
    /// Kills a node with SIGKILL (no clean shutdown, as in a power cut);
    /// the others carry on and the devnet shows it as down.
    Kill {
        /// A validator's index (1 is node-1) or a node's name (full-0).
        node: String,
        /// The running devnet's directory (it prints it at start).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Starts a node that is down again, from its data; it catches up.
    Restart {
        /// A validator's index (1 is node-1) or a node's name (full-0).
        node: String,
        /// The running devnet's directory (it prints it at start).
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Snapshot files (see node/README.md, "Joining by state sync").
#[derive(Subcommand)]
enum LightQuery {
    /// An account's balance, nonce and stake at the newest height a peer
    /// can prove.
    Account {
        /// The account's address (hex).
        address: String,
    },
    /// A finalized transaction's outcome: success or the failure's name,
    /// gas used, fee paid and events, proven by its receipt under its
    /// block's certified receipts root.
    Receipt {
        /// The transaction's hash (hex), as `ballast transfer` prints it.
        hash: String,
    },
}

#[derive(Subcommand)]
enum SnapshotAction {
    /// Writes a stopped node's state at a recent finalized height to a
    /// file, and prints the height and block hash to pass to `import`.
    Export {
        /// The node's TOML config (its data directory is read).
        #[arg(long)]
        config: PathBuf,
        /// The file to write (complete or absent: written aside, then
        /// renamed).
        #[arg(long)]
        out: PathBuf,
        /// Default: the newest stored state; any of the latest 64 heights.
        #[arg(long)]
        height: Option<u64>,
    },
    /// Makes a snapshot file the starting state of an empty full node,
    /// after checking every chunk against the block whose hash you give;
    /// then `ballast run` follows the chain from there.
    Import {
        /// The full node's TOML config (with sync_from).
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        file: PathBuf,
        /// The hash of the block at the snapshot's height, from a source
        /// you trust (e.g. `ballast_getBlockByHeight` on your own node).
        #[arg(long)]
        block_hash: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Writes a new ed25519 secret key (hex, mode 0600) and prints its
    /// public key, which is the validator's identity and account address;
    /// on stderr, the BLS vote key derived from it and that key's proof of
    /// possession (what a bls12381 genesis lists as `vote_key` and
    /// `vote_key_proof`).
    Keygen {
        /// File to create; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Registers the BLS vote key derived from a validator's key file, so
    /// that its stake can enter the set of a chain that votes with BLS
    /// (once per key; stakers without one are passed over at epoch
    /// starts). Fee: 25.
    RegisterVoteKey {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// The validator's secret key file (its account pays).
        #[arg(long)]
        key: PathBuf,
        /// Only print the signed transaction (hex).
        #[arg(long)]
        print: bool,
    },
    /// Makes a network: genesis, validator keys, node configs, funded
    /// accounts. Then start each validator with `ballast run`.
    Init {
        /// An empty directory to write into.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Full nodes (DIR/full-N): no key, no vote; they follow the
        /// validators' finalized chain over RPC and serve RPC themselves.
        #[arg(long, default_value_t = 0)]
        full_nodes: usize,
        #[arg(long, default_value_t = 1)]
        chain_id: u64,
        /// Client accounts funded at genesis (keys in DIR/accounts).
        #[arg(long, default_value_t = 16)]
        accounts: usize,
        /// The address validators listen on and dial.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Validator i listens for QUIC on P2P_PORT + i.
        #[arg(long, default_value_t = 7000)]
        p2p_port: u16,
        /// Validator i serves JSON-RPC on RPC_PORT + i.
        #[arg(long, default_value_t = 8545)]
        rpc_port: u16,
        /// What votes are signed with: bls12381 (a certificate is one
        /// ~100-byte aggregate) or ed25519 (a list of signatures; votes can
        /// be proven on chain as slashing evidence).
        #[arg(long, value_enum, default_value_t = ConsensusScheme::Bls12381)]
        consensus_scheme: ConsensusScheme,
    },
    /// Runs a validator, or a full node if the config has `sync_from`.
    /// Stops cleanly on SIGINT or SIGTERM; after any stop
    /// (even `kill -9`) it resumes from its data directory.
    Run {
        /// The node's TOML config (see `ballast init`); BALLAST_* variables
        /// override its fields.
        #[arg(long)]
        config: PathBuf,
    },
    /// Prints a node's head, view and mempool size.
    Status {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
    },
    /// Lists a validator's peers: address, score (100 is clean; 0 bans),
    /// ban, and the offences charged to each (see node/README.md, "Peer
    /// scoring and bans").
    Peers {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
    },
    /// Starts a local network of separate validator processes on loopback
    /// and shows finalized heights climbing until Ctrl-C.
    #[command(args_conflicts_with_subcommands = true)]
    Devnet {
        /// Act on a devnet already running (from another terminal).
        #[command(subcommand)]
        action: Option<DevnetAction>,
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Also run full nodes (RPC ports after the validators').
        #[arg(long, default_value_t = 0)]
        full_nodes: usize,
        /// Keep the network here (resumed if it exists); default: a
        /// temporary directory removed at exit.
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 7000)]
        p2p_port: u16,
        #[arg(long, default_value_t = 8545)]
        rpc_port: u16,
        #[arg(long, default_value_t = 16)]
        accounts: usize,
        /// Stop once every validator has finalized this height (for scripts).
        #[arg(long)]
        until_height: Option<u64>,
        /// Restart a node that dies, from its data, this many seconds later
        /// (default: it stays down until `ballast devnet restart N`).
        #[arg(long, value_name = "SECS")]
        restart_crashed: Option<u64>,
        /// What a fresh devnet's votes are signed with (see `init`).
        #[arg(long, value_enum, default_value_t = ConsensusScheme::Bls12381)]
        consensus_scheme: ConsensusScheme,
    },
    /// Signs a transfer and submits it (or prints it, for curl).
    Transfer {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// The sender's secret key file.
        #[arg(long)]
        key: PathBuf,
        /// Recipient address (hex).
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u64,
        /// Only print the signed transaction (hex) for
        /// `ballast_sendTransaction`; nonce and height still come from RPC.
        #[arg(long)]
        print: bool,
    },
    /// Bonds stake from the key's own account to the key itself: how a
    /// new validator joins. Its key (from `ballast keygen`) enters the
    /// validator set, and the roster, when the next epoch starts; then
    /// start it with `ballast run` (see node/README.md, "Joining as a new
    /// validator"). The account must hold the amount plus the fee.
    Stake {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
        /// The validator's secret key file (its account pays).
        #[arg(long)]
        key: PathBuf,
        /// Base units to bond (a genesis validator's `stake = 1` is
        /// 1000000).
        #[arg(long)]
        amount: u64,
        /// Only print the signed transaction (hex).
        #[arg(long)]
        print: bool,
    },
    /// A light client: proves an account's balance or a transaction's
    /// outcome from the genesis file, finalization certificates and state
    /// or receipt proofs alone, trusting no node.
    /// It follows every epoch's validator set from genesis, asks every
    /// peer, and names the check each lying peer failed.
    Light {
        /// The chain's genesis file (what the validators run).
        #[arg(long)]
        genesis: PathBuf,
        /// Peers' RPC URLs, comma-separated; none is trusted.
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8545")]
        rpc: Vec<String>,
        #[command(subcommand)]
        query: LightQuery,
    },
    /// Exports a node's state to a file, or imports one into a new full
    /// node (instead of executing the chain from genesis).
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// Load generator: signed transfers over RPC at a target rate; reports
    /// throughput and finalization latency percentiles.
    Bench {
        /// RPC URLs, comma-separated (spread the load over validators).
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8545")]
        rpc: Vec<String>,
        /// Directory of funded account keys (`init`'s DIR/accounts).
        #[arg(long, required_unless_present = "bound_only")]
        accounts: Option<PathBuf>,
        /// Only measure this machine's ed25519 batch verification rate and
        /// exit: run it with no network running, then pass the figure to
        /// `--bound-verifications-per-second` (validators that idle still
        /// use the cores: an idle BLS devnet took about a quarter here).
        #[arg(long)]
        bound_only: bool,
        /// Use this batch verification rate (all cores) as the bound
        /// instead of measuring it with the network idle.
        #[arg(long)]
        bound_verifications_per_second: Option<f64>,
        /// Offered transactions per second; a comma-separated list runs a
        /// sweep, one run per rate.
        #[arg(long, value_delimiter = ',', default_value = "200")]
        rate: Vec<u64>,
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// Validators in the network (each verifies every transaction).
        #[arg(long, default_value_t = 4)]
        validators: u64,
        /// Also write a markdown report (e.g. results/node.md) and, beside
        /// it with the extension .svg, the throughput/latency curve.
        #[arg(long)]
        results: Option<PathBuf>,
    },
}

/// The last line of a `ballast light` answer: where it was proven.
fn proven_summary<T>(proven: &ballast_node::light_client::Proven<T>) -> String {
    format!(
        "proven at height {} (epoch {}, {} epoch changes followed from genesis, {} bytes) from {}",
        proven.height, proven.epoch, proven.epochs_followed, proven.change_bytes, proven.peer
    )
}

async fn main_async(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Keygen { out } => {
            let key = ballast_node::init::fresh_key();
            write_key(&out, &key).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("{}", hex::encode(key.verifying_key().as_bytes()));
            let (vote_key, proof) = ballast_core::scheme::bls12381::derive_vote_key(key.as_bytes());
            // Stdout stays the key alone (scripts take it as the address);
            // the genesis lines of a bls12381 chain go to stderr.
            eprintln!("# for a bls12381 genesis, under this [[validators]] key:");
            eprintln!("vote_key = \"{}\"", hex::encode(vote_key));
            eprintln!("vote_key_proof = \"{}\"", hex::encode(proof));
        }
        Command::RegisterVoteKey { rpc, key, print } => {
            let secret = read_key(&key).map_err(|e| e.to_string())?;
            let (key_bytes, proof) =
                ballast_core::scheme::bls12381::derive_vote_key(secret.as_bytes());
            let action = Action::RegisterVoteKey {
                key: key_bytes,
                proof,
            };
            submit(&rpc, &key, action, print).await?;
        }
        Command::Init {
            dir,
            validators,
            full_nodes,
            chain_id,
            accounts,
            host,
            p2p_port,
            rpc_port,
            consensus_scheme,
        } => {
            let configs = init(&InitOptions {
                dir: dir.clone(),
                validators,
                full_nodes,
                chain_id,
                accounts,
                account_balance: 1_000_000_000_000,
                host,
                p2p_port,
                rpc_port,
                timeouts: Timeouts::default(),
                scheme: consensus_scheme,
            })
            .map_err(|e| e.to_string())?;
            println!(
                "wrote {}/genesis.toml ({consensus_scheme} votes) and:",
                dir.display()
            );
            for config in configs {
                println!("  ballast run --config {}", config.display());
            }
        }
        Command::Run { config } => {
            let config = NodeConfig::load(&config, |name| std::env::var(name).ok())
                .map_err(|e| e.to_string())?;
            ballast_node::process::init_logging(&config.log_format, &config.log_filter);
            ballast_node::node::run(config, ballast_node::process::shutdown_signal(), |_| {})
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "node stopped");
                    e.to_string()
                })?;
        }
        Command::Status { rpc } => {
            let client = Client::new(&rpc).map_err(|e| e.to_string())?;
            let head = client.head().await.map_err(|e| format!("{rpc}: {e}"))?;
            let chain_id = client.chain_id().await.map_err(|e| e.to_string())?;
            println!("chain {chain_id}");
            println!("finalized height {}  hash {}", head["height"], head["hash"]);
            println!("state root {}", head["state_root"]);
            println!("view {}  mempool {}", head["view"], head["mempool"]);
        }
        Command::Peers { rpc } => {
            let client = Client::new(&rpc).map_err(|e| e.to_string())?;
            let peers = client
                .call("ballast_peers", vec![])
                .await
                .map_err(|e| format!("{rpc}: {e}"))?;
            print!("{}", peers_table(&peers));
        }
        Command::Devnet {
            action: Some(DevnetAction::Kill { node, dir }),
            ..
        } => control(&dir, &node, Control::Kill).map_err(|e| e.to_string())?,
        Command::Devnet {
            action: Some(DevnetAction::Restart { node, dir }),
            ..
        } => control(&dir, &node, Control::Restart).map_err(|e| e.to_string())?,
        Command::Devnet {
            action: None,
            validators,
            full_nodes,
            dir,
            p2p_port,
            rpc_port,
            accounts,
            until_height,
            restart_crashed,
            consensus_scheme,
        } => devnet(DevnetOptions {
            validators,
            full_nodes,
            dir,
            p2p_port,
            rpc_port,
            accounts,
            until_height,
            restart_crashed_secs: restart_crashed,
            scheme: consensus_scheme,
        })
        .await
        .map_err(|e| e.to_string())?,
        Command::Transfer {
            rpc,
            key,
            to,
            amount,
            print,
        } => {
            let to = parse_hex32(&to)?;
            submit(&rpc, &key, Action::Transfer { to, amount }, print).await?;
        }
        Command::Stake {
            rpc,
            key,
            amount,
            print,
        } => {
            submit(&rpc, &key, Action::Stake { amount }, print).await?;
        }
        Command::Light {
            genesis,
            rpc,
            query,
        } => {
            let genesis = Genesis::load(&genesis).map_err(|e| e.to_string())?;
            let (refused, summary) = match query {
                LightQuery::Account { address } => {
                    let address = parse_hex32(&address)?;
                    let proven = ballast_node::light_client::prove_account(&genesis, &rpc, address)
                        .await
                        .map_err(|e| e.to_string())?;
                    match &proven.answer {
                        Some(account) => println!(
                            "balance {}  nonce {}  staked {}",
                            account.balance, account.nonce, account.staked
                        ),
                        None => println!("balance 0  (no account: proven absent)"),
                    }
                    (proven.refused.clone(), proven_summary(&proven))
                }
                LightQuery::Receipt { hash } => {
                    let hash = Digest(parse_hex32(&hash)?);
                    let proven = ballast_node::light_client::prove_receipt(&genesis, &rpc, hash)
                        .await
                        .map_err(|e| e.to_string())?;
                    let record = &proven.answer;
                    let outcome = match record.failure {
                        None => "success".to_string(),
                        Some(code) => format!(
                            "failed: {} (code {code})",
                            ballast_core::ledger::receipts::failure_name(code)
                        ),
                    };
                    println!(
                        "{outcome}  gas_used {}  fee_paid {}  events {}",
                        record.gas_used,
                        record.fee_paid,
                        record.events.len(),
                    );
                    if !record.output.is_empty() {
                        println!("output {}", hex::encode(&record.output));
                    }
                    for event in &record.events {
                        println!("event {}", ballast_node::json::event(event));
                    }
                    (proven.refused.clone(), proven_summary(&proven))
                }
            };
            for (peer, why) in &refused {
                eprintln!("refused {peer}: {why}");
            }
            println!("{summary}");
        }
        Command::Snapshot { action } => {
            let config_path = match &action {
                SnapshotAction::Export { config, .. } | SnapshotAction::Import { config, .. } => {
                    config.clone()
                }
            };
            let config = NodeConfig::load(&config_path, |name| std::env::var(name).ok())
                .map_err(|e| e.to_string())?;
            let genesis = ballast_node::genesis::Genesis::load(&config.genesis_file)
                .map_err(|e| e.to_string())?;
            let summary = match action {
                SnapshotAction::Export { out, height, .. } => {
                    let summary =
                        ballast_node::snapshot_file::export(&config, &genesis, height, &out)
                            .map_err(|e| e.to_string())?;
                    println!("wrote {}", out.display());
                    summary
                }
                SnapshotAction::Import {
                    file, block_hash, ..
                } => {
                    let hash = parse_hex32(&block_hash)?;
                    let summary = ballast_node::with_scheme!(
                        genesis.consensus_scheme,
                        ballast_node::snapshot_file::import(
                            &config,
                            &genesis,
                            &file,
                            ballast_core::Digest(hash),
                        )
                    )
                    .map_err(|e| e.to_string())?;
                    println!("imported {}", file.display());
                    summary
                }
            };
            println!(
                "height {}  block {}  entries {}  chunks {}",
                summary.height,
                hex::encode(summary.block.0),
                summary.entries,
                summary.chunks
            );
        }
        Command::Bench {
            rpc,
            accounts,
            rate,
            duration_secs,
            validators,
            results,
            bound_only,
            bound_verifications_per_second,
        } => {
            // The bound first, while the network is idle: measured after a
            // run it shares the cores with the validators' backlog.
            let (idle, measured) = match bound_verifications_per_second {
                Some(given) if given > 0.0 => (given, "given"),
                Some(given) => {
                    return Err(format!(
                        "--bound-verifications-per-second {given}: must be positive"
                    ));
                }
                None => {
                    let busy =
                        ballast_node::bench::machine_busy_share(std::time::Duration::from_secs(1));
                    if let Some(busy) = busy.filter(|b| *b > 0.05) {
                        println!(
                            "warning: the machine is {:.0}% busy before the bound is measured (idle validators still use the cores): \
                             the bound will read low and every ratio high; for an honest bound run `ballast bench --bound-only` \
                             before starting the network and pass its figure to --bound-verifications-per-second",
                            busy * 100.0
                        );
                    }
                    (
                        ballast_node::bench::batch_verify_rate(),
                        "measured now, the network idle",
                    )
                }
            };
            println!(
                "machine bound ({measured}): ed25519 batch verification {idle:.0}/s on all cores / {validators} validators = {:.0} tx/s",
                idle / validators.max(1) as f64
            );
            if bound_only {
                return Ok(());
            }
            let accounts = accounts.expect("clap requires --accounts without --bound-only");
            let mut runs = Vec::new();
            for rate in rate {
                let report = bench(BenchOptions {
                    rpcs: rpc.clone(),
                    accounts_dir: accounts.clone(),
                    rate_per_second: rate,
                    duration_seconds: duration_secs,
                    validators,
                    idle_batch_verify_per_second: Some(idle),
                })
                .await?;
                runs.push((rate, report));
            }
            if let Some(path) = results {
                let command: Vec<String> = std::env::args().collect();
                // The curve beside the table, same name, .svg.
                let plot = path.with_extension("svg");
                let plot_name = plot
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                let mut text = ballast_node::bench::markdown(&command.join(" "), validators, &runs);
                text.push_str(&format!("\n![throughput and latency]({plot_name})\n"));
                std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
                std::fs::write(&plot, ballast_node::bench_plot::curve_svg(&runs))
                    .map_err(|e| format!("{}: {e}", plot.display()))?;
                println!("wrote {} and {}", path.display(), plot.display());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    match runtime.block_on(main_async(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `ballast peers`' table, one peer per line.
fn peers_table(peers: &serde_json::Value) -> String {
    let mut out = format!(
        "{:>5}  {:<16}  {:<21}  {:>5}  {:<12}  offences\n",
        "index", "key", "address", "score", "ban"
    );
    for peer in peers.as_array().into_iter().flatten() {
        let key = peer["key"].as_str().unwrap_or_default();
        let ban = match peer["banned_for_secs"].as_u64() {
            Some(secs) => format!("{secs} s left"),
            None if peer["bans"].as_u64().unwrap_or(0) > 0 => format!("ended ({})", peer["bans"]),
            None => "-".to_string(),
        };
        let offences: Vec<String> = peer["offences"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(reason, count)| format!("{reason}={count}"))
            .collect();
        out.push_str(&format!(
            "{:>5}  {:<16}  {:<21}  {:>5}  {:<12}  {}\n",
            peer["index"],
            &key[..key.len().min(16)],
            peer["address"].as_str().unwrap_or("-"),
            peer["score"],
            ban,
            if offences.is_empty() {
                "-".to_string()
            } else {
                offences.join(" ")
            },
        ));
    }
    out
}

/// Signs `action` from the account of the key in `key_file` (nonce and
/// height from `rpc`) and submits it, printing its hash, or only prints
/// the signed transaction (hex) when `print_only`.
async fn submit(
    rpc: &str,
    key_file: &std::path::Path,
    action: Action,
    print_only: bool,
) -> Result<(), String> {
    let key = read_key(key_file).map_err(|e| e.to_string())?;
    let client = Client::new(rpc).map_err(|e| e.to_string())?;
    let chain_id = client.chain_id().await.map_err(|e| format!("{rpc}: {e}"))?;
    let height = client.height().await.map_err(|e| e.to_string())?;
    let nonce = client
        .nonce(&key.verifying_key().to_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let tx = signed(&key, chain_id, nonce, height, action);
    if print_only {
        println!("{}", hex::encode(tx.encode()));
    } else {
        let hash = client.send(&tx).await.map_err(|e| e.to_string())?;
        println!("{hash}");
    }
    Ok(())
}
