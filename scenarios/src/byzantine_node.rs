//! `ballast-byzantine`: a real `ballast` validator whose outgoing consensus
//! messages pass through one of the simulator's Byzantine roles (crate
//! `ballast-byzantine`), for the real-process runner (`ballast-scenarios
//! run --real`). Only the testbed builds it; the `ballast` binary operators
//! run links none of this code.
//!
//! The node underneath is the real one: its config, RocksDB, QUIC, RPC and
//! metrics. Only what its engine sends is rewritten, signed with its own key,
//! as a malicious operator could do with a patched binary.

use ballast_byzantine::{AdversaryTransport, Forge, Role};
use ballast_core::consensus::Config;
use ballast_node::config::NodeConfig;
use ballast_node::node::WrapTransport;
use ballast_node::scheme::NodeScheme;
use ballast_scenarios::real::role_acts_on_a_real_node;
use ballast_transports::Transport;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs a validator from a `ballast run` config with a Byzantine role
/// wrapped around its transport. For the testbed only: never run it on a
/// network you care about.
#[derive(Parser)]
#[command(name = "ballast-byzantine", version)]
struct Cli {
    /// The role, as a scenario file names it: equivocating-leader,
    /// double-voter, nullify-and-finalize, withhold-votes,
    /// invalid-signatures, replay, withhold-proposals,
    /// votes-for-unknown-blocks, forged-certificates, flood, any-parent.
    #[arg(long)]
    role: String,
    /// Seeds the role's own draws (which digests it forges, which shapes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The node's config, as for `ballast run --config`.
    #[arg(long)]
    config: PathBuf,
}

struct Attacker {
    role: Role,
    seed: u64,
}

impl<S: NodeScheme + Forge> WrapTransport<S> for Attacker {
    fn wrap<T: Transport>(&self, inner: T, scheme: S, consensus: Config) -> impl Transport {
        AdversaryTransport::byzantine(inner, self.role, scheme, &consensus, self.seed)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let role = match Role::named(&cli.role) {
        Some(role) if role_acts_on_a_real_node(role) => role,
        Some(role) => {
            eprintln!(
                "error: role {} does not act on a real node's consensus messages",
                role.name()
            );
            return ExitCode::FAILURE;
        }
        None => {
            eprintln!(
                "error: no role named {:?} (see --help for the roles)",
                cli.role
            );
            return ExitCode::FAILURE;
        }
    };
    let config = match NodeConfig::load(&cli.config, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {}: {e}", cli.config.display());
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    let attacker = Attacker {
        role,
        seed: cli.seed,
    };
    let result = runtime.block_on(async {
        ballast_node::process::init_logging(&config.log_format, &config.log_filter);
        tracing::warn!(role = role.name(), "this validator is Byzantine on purpose");
        ballast_node::node::run_wrapped(
            config,
            &attacker,
            ballast_node::process::shutdown_signal(),
            |_| {},
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "node stopped");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
