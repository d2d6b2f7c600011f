//! `ballast bench`: submits signed transfers over JSON-RPC at a target rate
//! and reports achieved throughput and finalization latency percentiles,
//! next to the machine's bound measured in the same run.
//!
//! Each sending account is bound to one node's RPC, so its nonces arrive in
//! order at one mempool (the node gossips them on). Transactions are sent
//! with `ballast_sendTransactions`, as many per call as have queued up.
//! Latency is from the moment a transaction is handed to the RPC call to
//! the moment a `ballast_finalized` notification names it.
//!
//! Transfers are signed and encoded before the timed run ([`Presigned`]):
//! signed on the fly, they cost the generator about 10% of a 2-core
//! machine, taken from the validators it measures. A real client signs on
//! its own machine.

use crate::client::{Client, transfer};
use crate::config::read_key;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use jsonrpsee::core::client::SubscriptionClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct BenchOptions {
    /// RPC URLs (http://host:port), one per validator to spread load.
    pub rpcs: Vec<String>,
    /// A directory of funded account keys (`init`'s `accounts/`).
    pub accounts_dir: PathBuf,
    pub rate_per_second: u64,
    pub duration_seconds: u64,
    /// Validators that each verify every transaction (for the bound).
    pub validators: u64,
    /// This machine's batch verification rate ([`batch_verify_rate`]),
    /// measured while the network was idle (a sweep measures it once,
    /// before any load: measured after a run, the validators still
    /// draining their backlog took half the cores and the bound read
    /// 17k instead of ~27k). `None` measures it after this run.
    pub idle_batch_verify_per_second: Option<f64>,
}

#[derive(Debug, Default)]
pub struct BenchReport {
    pub sent: u64,
    /// Transactions the generator did not send because every account
    /// already had [`MAX_IN_FLIGHT_PER_ACCOUNT`] awaiting finality: the
    /// network is saturated, and sending more would only fill mempools
    /// until they refuse.
    pub held_back: u64,
    pub rejected: u64,
    pub finalized: u64,
    pub seconds: f64,
    pub achieved_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub bound_per_second: f64,
    pub batch_verify_per_second: f64,
    /// The load generator's own CPU time over the run, as a share of all
    /// cores' time: what it took from the validators it measures.
    pub load_cpu_share: f64,
    /// Transactions still in the nodes' mempools when the run began (a
    /// previous run's backlog that did not drain in time).
    pub backlog_at_start: u64,
}

/// Most transactions one account has awaiting finality: half the node's
/// per-sender mempool limit (256), so the generator never makes a mempool
/// refuse a sender (which would leave a nonce gap behind every later
/// transaction of that sender).
pub const MAX_IN_FLIGHT_PER_ACCOUNT: u64 = 128;

/// Most transfers signed ahead of a run (about 470 bytes each with their
/// hex encodings: ~235 MiB). A longer schedule signs the rest as it goes.
pub const MAX_PRESIGNED: u64 = 500_000;

/// One transfer ready to send: its nonce, hash and raw encoding in hex.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Prepared {
    nonce: u64,
    hash: String,
    raw: String,
}

impl Prepared {
    fn of(tx: &ballast_core::ledger::tx::SignedTransaction) -> Prepared {
        Prepared {
            nonce: tx.tx.nonce,
            hash: hex::encode(tx.hash().0),
            raw: hex::encode(tx.encode()),
        }
    }
}

/// What every transfer of a run is built from.
#[derive(Clone, Copy)]
struct TransferTemplate {
    chain_id: u64,
    height: u64,
    to: [u8; 32],
}

impl TransferTemplate {
    fn prepare(&self, key: &SigningKey, nonce: u64) -> Prepared {
        Prepared::of(&transfer(
            key,
            self.chain_id,
            nonce,
            self.height,
            self.to,
            1,
        ))
    }
}

/// Each account's transfers for consecutive nonces from its first one,
/// signed before the run on all cores. A nonce outside them (an account
/// sent more than its share, or a long schedule) is signed when needed, to
/// the same bytes.
struct Presigned {
    first_nonce: Vec<u64>,
    by_account: Vec<Vec<Prepared>>,
}

impl Presigned {
    /// `per_account` transfers for each of `keys` from `first_nonce`.
    fn sign(
        keys: &[SigningKey],
        first_nonce: &[u64],
        per_account: u64,
        template: TransferTemplate,
    ) -> Presigned {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = keys.len().div_ceil(threads).max(1);
        let by_account = std::thread::scope(|scope| {
            let workers: Vec<_> = keys
                .chunks(chunk)
                .zip(first_nonce.chunks(chunk))
                .map(|(keys, firsts)| {
                    scope.spawn(move || {
                        keys.iter()
                            .zip(firsts)
                            .map(|(key, first)| {
                                (*first..first + per_account)
                                    .map(|nonce| template.prepare(key, nonce))
                                    .collect::<Vec<_>>()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a signing thread panicked"))
                .collect()
        });
        Presigned {
            first_nonce: first_nonce.to_vec(),
            by_account,
        }
    }

    /// `account`'s transfer at `nonce`: the one signed ahead, or a new one.
    fn get(
        &self,
        account: usize,
        nonce: u64,
        key: &SigningKey,
        template: &TransferTemplate,
    ) -> Prepared {
        nonce
            .checked_sub(self.first_nonce[account])
            .and_then(|i| self.by_account[account].get(usize::try_from(i).ok()?))
            .cloned()
            .unwrap_or_else(|| template.prepare(key, nonce))
    }
}

/// How many transfers to sign ahead per account for `total` over
/// `accounts`: an even share and an eighth more (round robin skips
/// accounts at their cap, so some send more than their share), within
/// [`MAX_PRESIGNED`].
fn presigned_per_account(total: u64, accounts: usize) -> u64 {
    let accounts = accounts.max(1) as u64;
    let share = total.div_ceil(accounts);
    (share + share / 8 + 1).min(MAX_PRESIGNED / accounts)
}

/// Each account's transactions in flight and what to do after a refusal.
struct Accounts {
    in_flight: Vec<AtomicU64>,
    /// The lowest nonce refused per account (`u64::MAX`: none): once the
    /// account has nothing in flight, sending resumes from it.
    lowest_refused: Vec<AtomicU64>,
}

impl Accounts {
    fn new(count: usize) -> Accounts {
        Accounts {
            in_flight: (0..count).map(|_| AtomicU64::new(0)).collect(),
            lowest_refused: (0..count).map(|_| AtomicU64::new(u64::MAX)).collect(),
        }
    }

    fn done(&self, account: usize) {
        self.in_flight[account].fetch_sub(1, Ordering::Relaxed);
    }

    fn refused(&self, account: usize, nonce: u64) {
        self.lowest_refused[account].fetch_min(nonce, Ordering::Relaxed);
        self.done(account);
    }

    /// Whether `account` may send now; resets `nonce` to the lowest refused
    /// one once its earlier transactions have all settled.
    fn ready(&self, account: usize, nonce: &mut u64) -> bool {
        let in_flight = self.in_flight[account].load(Ordering::Relaxed);
        let refused = self.lowest_refused[account].load(Ordering::Relaxed);
        if refused != u64::MAX {
            if in_flight > 0 {
                return false;
            }
            *nonce = refused;
            self.lowest_refused[account].store(u64::MAX, Ordering::Relaxed);
        }
        in_flight < MAX_IN_FLIGHT_PER_ACCOUNT
    }
}

/// Most time a run waits for the previous run's backlog to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// CPU seconds this process has used, all threads, user and system
/// (`/proc/self/stat`; 0 where there is no procfs).
fn process_cpu_seconds() -> f64 {
    // Fields 14 and 15 (utime, stime), in clock ticks; USER_HZ is 100 on
    // every Linux this runs on. The command name (field 2) may hold
    // spaces, so fields are counted after its closing parenthesis.
    const TICKS_PER_SECOND: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // After the name, field 3 (state) is index 0: utime is index 11.
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / TICKS_PER_SECOND,
        _ => 0.0,
    }
}

/// Waits until every node's mempool is empty (or [`DRAIN_TIMEOUT`]);
/// returns what was left.
async fn wait_for_drain(clients: &[Client]) -> u64 {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let mut waiting = 0;
        for client in clients {
            if let Ok(head) = client.call("ballast_head", Vec::new()).await {
                waiting += head["mempool"].as_u64().unwrap_or(0);
            }
        }
        if waiting == 0 || Instant::now() >= deadline {
            return waiting;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The share of all cores busy over `window` (from `/proc/stat`; `None`
/// where there is none). Validators that idle still use the cores (an
/// idle BLS devnet took about a tenth on average, in bursts that made the
/// bound read a third low), so the bound is only as honest as this is low.
pub fn machine_busy_share(window: std::time::Duration) -> Option<f64> {
    fn sample() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
        Some((fields.iter().sum::<u64>() - idle, idle))
    }
    let (busy0, idle0) = sample()?;
    std::thread::sleep(window);
    let (busy1, idle1) = sample()?;
    let (busy, idle) = (busy1.saturating_sub(busy0), idle1.saturating_sub(idle0));
    (busy + idle > 0).then(|| busy as f64 / (busy + idle) as f64)
}

/// ed25519 batch verification on every core for about a second: the rate
/// at which this machine can check signatures at all.
pub fn batch_verify_rate() -> f64 {
    const BATCH: usize = 256;
    let keys: Vec<SigningKey> = (0..BATCH as u64)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let messages: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| format!("transfer {i}").into_bytes())
        .collect();
    let signatures: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign(m)).collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let verified: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
                    let mut count = 0;
                    let begin = Instant::now();
                    while begin.elapsed() < Duration::from_secs(1) {
                        ed25519_dalek::verify_batch(&refs, &signatures, &verifying)
                            .expect("valid signatures");
                        count += BATCH;
                    }
                    count
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .sum()
    });
    verified as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

pub async fn bench(options: BenchOptions) -> Result<BenchReport, String> {
    let mut keys = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&options.accounts_dir)
        .map_err(|e| format!("{}: {e}", options.accounts_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .collect();
    entries.sort();
    for path in entries {
        keys.push(read_key(&path).map_err(|e| e.to_string())?);
    }
    if keys.is_empty() {
        return Err(format!(
            "no *.key files in {}",
            options.accounts_dir.display()
        ));
    }
    let clients: Vec<Client> = options
        .rpcs
        .iter()
        .map(|u| Client::new(u).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let backlog_at_start = wait_for_drain(&clients).await;
    if backlog_at_start > 0 {
        println!(
            "bench: {backlog_at_start} transactions still pending after {} s; starting anyway",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    let chain_id = clients[0].chain_id().await.map_err(|e| e.to_string())?;
    let height = clients[0].height().await.map_err(|e| e.to_string())?;
    let mut nonces = Vec::new();
    for key in &keys {
        let address = key.verifying_key().to_bytes();
        nonces.push(
            clients[0]
                .nonce(&address)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    println!(
        "bench: {} tx/s for {} s from {} accounts over {} node(s)",
        options.rate_per_second,
        options.duration_seconds,
        keys.len(),
        clients.len()
    );
    let total = options.rate_per_second * options.duration_seconds;
    let template = TransferTemplate {
        chain_id,
        height,
        to: [0xbe; 32],
    };
    let per_account = presigned_per_account(total, keys.len());
    let signing = Instant::now();
    let presigned = Presigned::sign(&keys, &nonces, per_account, template);
    println!(
        "bench: signed {} transfers ahead in {:.1} s",
        per_account * keys.len() as u64,
        signing.elapsed().as_secs_f64()
    );

    // Finalized transactions, from one node's subscription.
    let accepted: Arc<Mutex<BTreeMap<String, (Instant, usize)>>> = Arc::default();
    let accounts = Arc::new(Accounts::new(keys.len()));
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let last_finalized: Arc<Mutex<Option<Instant>>> = Arc::default();
    let ws_url = options.rpcs[0].replacen("http://", "ws://", 1);
    let ws = WsClientBuilder::default()
        .build(&ws_url)
        .await
        .map_err(|e| format!("{ws_url}: {e}"))?;
    let mut subscription = ws
        .subscribe::<Value, _>(
            "ballast_subscribeFinalized",
            rpc_params![],
            "ballast_unsubscribeFinalized",
        )
        .await
        .map_err(|e| e.to_string())?;
    let watcher = {
        let (accepted, latencies, last, accounts) = (
            accepted.clone(),
            latencies.clone(),
            last_finalized.clone(),
            accounts.clone(),
        );
        tokio::spawn(async move {
            while let Some(Ok(block)) = subscription.next().await {
                let now = Instant::now();
                let mut accepted = accepted.lock().expect("lock");
                let mut latencies = latencies.lock().expect("lock");
                for tx in block["transactions"].as_array().into_iter().flatten() {
                    if let Some((sent, account)) = tx.as_str().and_then(|h| accepted.remove(h)) {
                        accounts.done(account);
                        latencies.push(now.duration_since(sent).as_secs_f64() * 1e3);
                        *last.lock().expect("lock") = Some(now);
                    }
                }
            }
        })
    };

    // One sending task per node, submitting whatever has queued up as one
    // `ballast_sendTransactions` call: each account is bound to one node, so
    // its nonces arrive in order, and batches grow with the load.
    let rejected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reasons: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut queues = Vec::new();
    let mut senders = Vec::new();
    for client in &clients {
        let (queue, mut pending) = tokio::sync::mpsc::unbounded_channel::<(usize, Prepared)>();
        queues.push(queue);
        let client = client.clone();
        let (accepted, rejected, reasons, accounts) = (
            accepted.clone(),
            rejected.clone(),
            reasons.clone(),
            accounts.clone(),
        );
        senders.push(tokio::spawn(async move {
            while let Some(first) = pending.recv().await {
                let mut batch = vec![first];
                while batch.len() < crate::rpc::MAX_BATCH_TRANSACTIONS {
                    match pending.try_recv() {
                        Ok(tx) => batch.push(tx),
                        Err(_) => break,
                    }
                }
                {
                    let now = Instant::now();
                    let mut accepted = accepted.lock().expect("lock");
                    for (account, tx) in &batch {
                        accepted.insert(tx.hash.clone(), (now, *account));
                    }
                }
                let raws: Vec<String> = batch.iter().map(|(_, tx)| tx.raw.clone()).collect();
                let outcomes = match client.send_raw_many(raws).await {
                    Ok(outcomes) => outcomes,
                    Err(e) => vec![Err(e.to_string()); batch.len()],
                };
                for ((account, tx), outcome) in batch.iter().zip(outcomes) {
                    if let Err(reason) = outcome {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        *reasons.lock().expect("lock").entry(reason).or_default() += 1;
                        accepted.lock().expect("lock").remove(&tx.hash);
                        accounts.refused(*account, tx.nonce);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let cpu_at_start = process_cpu_seconds();
    // Round robin over the accounts that may send: an account at its
    // in-flight cap, or settling after a refusal, is skipped; if none may,
    // this transaction is held back (open loop: the schedule does not wait).
    let mut held_back = 0u64;
    let mut next_account = 0usize;
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / options.rate_per_second as f64);
        tokio::time::sleep_until(due.into()).await;
        let ready = (0..keys.len())
            .map(|offset| (next_account + offset) % keys.len())
            .find(|&account| accounts.ready(account, &mut nonces[account]));
        let Some(account) = ready else {
            held_back += 1;
            continue;
        };
        next_account = (account + 1) % keys.len();
        let tx = presigned.get(account, nonces[account], &keys[account], &template);
        nonces[account] += 1;
        accounts.in_flight[account].fetch_add(1, Ordering::Relaxed);
        let _ = queues[account % queues.len()].send((account, tx));
    }
    drop(queues);
    for sender in senders {
        let _ = sender.await;
    }
    // Wait for the tail to finalize (or give up after 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !accepted.lock().expect("lock").is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    let mut latencies = latencies.lock().expect("lock").clone();
    latencies.sort_by(f64::total_cmp);
    let end = last_finalized
        .lock()
        .expect("lock")
        .unwrap_or_else(Instant::now);
    let seconds = end.duration_since(started).as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let load_cpu_share =
        (process_cpu_seconds() - cpu_at_start) / (started.elapsed().as_secs_f64() * cores);
    let batch = options
        .idle_batch_verify_per_second
        .unwrap_or_else(batch_verify_rate);
    let report = BenchReport {
        sent: total - held_back,
        held_back,
        rejected: rejected.load(Ordering::Relaxed),
        finalized: latencies.len() as u64,
        seconds,
        achieved_per_second: latencies.len() as f64 / seconds,
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p99_ms: percentile(&latencies, 0.99),
        batch_verify_per_second: batch,
        bound_per_second: batch / options.validators.max(1) as f64,
        load_cpu_share,
        backlog_at_start,
    };
    println!(
        "sent {} (held back {}, rejected {}), finalized {} in {:.1} s: {:.0} tx/s; latency p50 {:.0} ms, p99 {:.0} ms",
        report.sent,
        report.held_back,
        report.rejected,
        report.finalized,
        report.seconds,
        report.achieved_per_second,
        report.latency_p50_ms,
        report.latency_p99_ms
    );
    for (reason, count) in reasons.lock().expect("lock").iter() {
        println!("  rejected {count}: {reason}");
    }
    println!(
        "load generator: {:.0}% of the machine's CPU",
        report.load_cpu_share * 100.0
    );
    println!(
        "machine bound: ed25519 batch verification {:.0}/s on all cores / {} validators = {:.0} tx/s; achieved {:.2} of it",
        report.batch_verify_per_second,
        options.validators,
        report.bound_per_second,
        report.achieved_per_second / report.bound_per_second
    );
    Ok(report)
}

/// A markdown report of a rate sweep, for `results/`.
pub fn markdown(command: &str, validators: u64, runs: &[(u64, BenchReport)]) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut text = format!(
        "# Node throughput and finalization latency\n\n\
         Command: `{command}`\n\n\
         Machine: {cores} cores; {validators} validator processes, the load generator and the \
         bound measurement all on it, over loopback QUIC.\n\n\
         The bound is this machine's ed25519 batch verification rate on all cores, measured \
         once in the same run before any load (the validators idle), or given with \
         `--bound-verifications-per-second` (measured by `--bound-only` with no network \
         running: idle BLS validators still take the cores in bursts), divided by the \
         {validators} validators that each verify every transaction. Each run starts once the \
         previous run's backlog has drained (backlog: what had not, after 60 s). Latency is \
         from the RPC accepting a transaction to the finalized-block notification naming it. \
         Load CPU: the load generator's own share of all cores over the run. Held back: \
         transactions of the schedule not sent because every account already had \
         {MAX_IN_FLIGHT_PER_ACCOUNT} awaiting finality (the network is saturated; sending \
         them would only make mempools refuse senders).\n\n\
         | offered tx/s | held back | finalized | rejected | achieved tx/s | p50 ms | p99 ms | bound tx/s | achieved / bound | load CPU | backlog |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (rate, r) in runs {
        text.push_str(&format!(
            "| {rate} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0}% | {} |\n",
            r.held_back,
            r.finalized,
            r.rejected,
            r.achieved_per_second,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.bound_per_second,
            r.achieved_per_second / r.bound_per_second,
            r.load_cpu_share * 100.0,
            r.backlog_at_start
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presigned_transfer_is_the_one_signed_when_needed() {
        let keys: Vec<SigningKey> = (1..=3u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let template = TransferTemplate {
            chain_id: 7,
            height: 40,
            to: [9; 32],
        };
        let firsts = [0, 5, 100];
        let presigned = Presigned::sign(&keys, &firsts, 4, template);
        for (account, key) in keys.iter().enumerate() {
            assert_eq!(presigned.by_account[account].len(), 4);
            // Below, inside and past the signed range: the same bytes.
            for nonce in firsts[account].saturating_sub(2)..firsts[account] + 6 {
                let got = presigned.get(account, nonce, key, &template);
                assert_eq!(
                    got,
                    template.prepare(key, nonce),
                    "account {account} nonce {nonce}"
                );
                assert_eq!(got.nonce, nonce);
            }
        }
        let tx = transfer(&keys[1], 7, 6, 40, [9; 32], 1);
        assert_eq!(
            presigned.get(1, 6, &keys[1], &template).raw,
            hex::encode(tx.encode())
        );
        assert_eq!(
            presigned.get(1, 6, &keys[1], &template).hash,
            hex::encode(tx.hash().0)
        );
    }

    #[test]
    fn presigning_covers_a_share_and_stays_within_its_limit() {
        assert_eq!(presigned_per_account(1_000, 10), 100 + 12 + 1);
        assert_eq!(presigned_per_account(7, 0), 7 + 1);
        let long = presigned_per_account(100_000_000, 128);
        assert_eq!(long, MAX_PRESIGNED / 128);
        assert!(long * 128 <= MAX_PRESIGNED);
    }

    #[test]
    fn an_account_waits_at_its_cap_and_resumes_from_a_refused_nonce() {
        let accounts = Accounts::new(2);
        let mut nonce = 0;
        for _ in 0..MAX_IN_FLIGHT_PER_ACCOUNT {
            assert!(accounts.ready(0, &mut nonce));
            accounts.in_flight[0].fetch_add(1, Ordering::Relaxed);
            nonce += 1;
        }
        assert!(!accounts.ready(0, &mut nonce), "at the cap");
        assert!(accounts.ready(1, &mut 0), "others are not held");
        // Nonces 5 and later are refused (a gap after 5): the account waits
        // for everything in flight, then resumes at 5.
        accounts.done(0);
        for refused in (5..MAX_IN_FLIGHT_PER_ACCOUNT).rev() {
            accounts.refused(0, refused);
        }
        assert!(!accounts.ready(0, &mut nonce), "0..5 still in flight");
        for _ in 1..5 {
            accounts.done(0);
        }
        assert!(accounts.ready(0, &mut nonce));
        assert_eq!(nonce, 5);
        assert!(accounts.ready(0, &mut nonce));
        assert_eq!(nonce, 5, "the reset happens once");
    }
}
