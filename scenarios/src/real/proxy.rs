//! A UDP fault proxy between every ordered pair of validator processes.
//!
//! QUIC runs over UDP, and this machine kind's kernel has no netem, so the
//! scenario's network faults are carried out here: validator `i` dials
//! validator `j` at [`Proxy::address`]`(i, j)`, a port of its own, and the
//! proxy relays each datagram to `j`'s real port from a socket of that pair
//! (and `j`'s answers back to `i`), after the scenario's latency, or never
//! (loss, a partition), or twice (duplication), or late (reordering). Each
//! pair has its own ports so the proxy always knows a datagram's direction.
//!
//! QUIC retransmits what is lost, so a lost datagram costs a real node a
//! retransmission where the simulator loses a message outright: that is
//! one of the differences the runner measures, not one it hides.
//!
//! Threads (this is not simulated code): two receivers per pair, blocked
//! in `recv_from`, and one sender that holds the delay queue. The random
//! draws come from one ChaCha8 stream seeded by the run's seed, taken in
//! the order datagrams arrive: a seed fixes the faults' distribution and
//! the partition schedule, not which datagram each draw hits.

use ballast_sim::scenario::Latency;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest datagram relayed (UDP's own limit); QUIC sends about 1,500.
pub const MAX_DATAGRAM_BYTES: usize = 65_535;
/// Most datagrams held back at once. Past it new ones are dropped (and
/// counted): a stalled sender must not grow the proxy without bound.
pub const MAX_QUEUED_DATAGRAMS: usize = 100_000;
/// Most validators the proxy serves: it runs two threads per ordered pair.
pub const MAX_VALIDATORS: usize = 16;
/// How often a blocked thread looks up to see whether the proxy stopped.
const POLL: Duration = Duration::from_millis(50);

/// What the proxy does to datagrams (the scenario's network section).
#[derive(Clone, Debug)]
pub struct Faults {
    pub latency: Latency,
    /// Per-link latency overrides, as in the scenario (either direction).
    pub link_latency: Vec<(u16, u16, Latency)>,
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub reorder_max_ms: f64,
    /// Each directed link sends this many bytes per ms: a datagram first
    /// waits for the ones queued on its link before it, as in the
    /// simulator's model (which delays and never drops; so does this).
    pub bandwidth_bytes_per_ms: Option<u64>,
}

impl Faults {
    /// No faults and no added delay: the proxy's own overhead.
    pub fn none() -> Faults {
        Faults {
            latency: Latency::Fixed { ms: 0.0 },
            link_latency: Vec::new(),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_max_ms: 0.0,
            bandwidth_bytes_per_ms: None,
        }
    }

    fn latency(&self, from: u16, to: u16) -> &Latency {
        self.link_latency
            .iter()
            .find(|(a, b, _)| (*a, *b) == (from, to) || (*a, *b) == (to, from))
            .map_or(&self.latency, |(_, _, l)| l)
    }
}

/// What the proxy did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub relayed: u64,
    pub lost: u64,
    pub cut_by_partition: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub dropped_queue_full: u64,
}

/// A datagram waiting for its time.
struct Pending {
    due: Instant,
    /// Arrival order: ties leave in the order they came.
    seq: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

struct State {
    queue: BinaryHeap<Reverse<Pending>>,
    rng: ChaCha8Rng,
    /// Directed pairs a partition cuts now.
    cut: BTreeSet<(u16, u16)>,
    /// Loss, duplication and reordering apply while this holds (the
    /// scenario's `network_faults_until_ms`); latency always does.
    faults_on: bool,
    /// Under a bandwidth limit: when each directed link is done sending
    /// what it holds.
    busy_until: BTreeMap<(u16, u16), Instant>,
    seq: u64,
    stats: Stats,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    stop: AtomicBool,
    faults: Faults,
}

impl Shared {
    /// Decides a datagram's fate and queues its copies.
    fn relay(
        &self,
        (from, to): (u16, u16),
        socket: &Arc<UdpSocket>,
        dest: SocketAddr,
        bytes: &[u8],
    ) {
        let mut state = self.state.lock().expect("proxy lock");
        let state = &mut *state;
        if state.cut.contains(&(from, to)) {
            state.stats.cut_by_partition += 1;
            return;
        }
        let faults = &self.faults;
        if state.faults_on && faults.loss > 0.0 && state.rng.gen_bool(faults.loss) {
            state.stats.lost += 1;
            return;
        }
        let copies =
            if state.faults_on && faults.duplicate > 0.0 && state.rng.gen_bool(faults.duplicate) {
                state.stats.duplicated += 1;
                2
            } else {
                1
            };
        let now = Instant::now();
        // The link's queue, once per datagram (a duplicate is the network
        // repeating it, as in the simulator).
        let queued = match faults.bandwidth_bytes_per_ms {
            None => Duration::ZERO,
            Some(rate) => {
                let busy = state.busy_until.entry((from, to)).or_insert(now);
                let start = (*busy).max(now);
                *busy = start + Duration::from_micros(bytes.len() as u64 * 1000 / rate);
                *busy - now
            }
        };
        for _ in 0..copies {
            if state.queue.len() >= MAX_QUEUED_DATAGRAMS {
                state.stats.dropped_queue_full += 1;
                continue;
            }
            let mut delay_ms = faults.latency(from, to).sample_ms(&mut state.rng);
            if state.faults_on && faults.reorder > 0.0 && state.rng.gen_bool(faults.reorder) {
                state.stats.reordered += 1;
                delay_ms += state.rng.gen_range(0.0..=faults.reorder_max_ms);
            }
            state.seq += 1;
            state.queue.push(Reverse(Pending {
                due: now + queued + Duration::from_micros((delay_ms.max(0.0) * 1000.0) as u64),
                seq: state.seq,
                socket: socket.clone(),
                to: dest,
                bytes: bytes.to_vec(),
            }));
        }
        self.wake.notify_one();
    }

    /// The sender: sends each datagram when it is due.
    fn send_loop(&self) {
        let mut state = self.state.lock().expect("proxy lock");
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            match state.queue.peek() {
                Some(Reverse(next)) if next.due <= now => {
                    let Reverse(next) = state.queue.pop().expect("peeked");
                    state.stats.relayed += 1;
                    drop(state);
                    // A send error (the node is down: ICMP refused) is what
                    // a real network does too: the datagram is gone.
                    let _ = next.socket.send_to(&next.bytes, next.to);
                    state = self.state.lock().expect("proxy lock");
                }
                Some(Reverse(next)) => {
                    let wait = (next.due - now).min(POLL);
                    state = self.wake.wait_timeout(state, wait).expect("proxy lock").0;
                }
                None => state = self.wake.wait_timeout(state, POLL).expect("proxy lock").0,
            }
        }
    }
}

/// One ordered pair's sockets: `front` is where the dialer sends, `back`
/// is where the target sees it come from.
struct Link {
    dialer: u16,
    target: u16,
    front: Arc<UdpSocket>,
    back: Arc<UdpSocket>,
    /// The target's real QUIC address.
    real: SocketAddr,
    /// The dialer's address, learned from its latest datagram (its socket
    /// is the node's one QUIC endpoint, so it does not change while it
    /// runs; a restarted node may come back on another port).
    dialer_at: Mutex<Option<SocketAddr>>,
}

impl Link {
    /// Dialer to target.
    fn forward_loop(&self, shared: &Shared) {
        let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
        while !shared.stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = self.front.recv_from(&mut buf) else {
                continue; // timeout: look at `stop` again
            };
            *self.dialer_at.lock().expect("proxy lock") = Some(from);
            shared.relay(
                (self.dialer, self.target),
                &self.back,
                self.real,
                &buf[..len],
            );
        }
    }

    /// Target's answers back to the dialer.
    fn backward_loop(&self, shared: &Shared) {
        let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
        while !shared.stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = self.back.recv_from(&mut buf) else {
                continue;
            };
            if from != self.real {
                continue; // not the target: nothing to relay it to
            }
            let Some(dialer) = *self.dialer_at.lock().expect("proxy lock") else {
                continue;
            };
            shared.relay((self.target, self.dialer), &self.front, dialer, &buf[..len]);
        }
    }
}

/// The running proxy; [`Proxy::stop`] (or dropping it) stops its threads.
pub struct Proxy {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    addresses: BTreeMap<(u16, u16), SocketAddr>,
    validators: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the proxy serves at most {MAX_VALIDATORS} validators, not {0}")]
    TooMany(usize),
    #[error("proxy socket: {0}")]
    Io(#[from] std::io::Error),
}

impl Proxy {
    /// Starts relaying to `targets` (each validator's real QUIC address).
    pub fn start(targets: &[SocketAddr], faults: Faults, seed: u64) -> Result<Proxy, ProxyError> {
        let n = targets.len();
        if n > MAX_VALIDATORS {
            return Err(ProxyError::TooMany(n));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: BinaryHeap::new(),
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7072_6f78_7900),
                cut: BTreeSet::new(),
                faults_on: true,
                busy_until: BTreeMap::new(),
                seq: 0,
                stats: Stats::default(),
            }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            faults,
        });
        let mut links = Vec::new();
        let mut addresses = BTreeMap::new();
        for dialer in 0..n as u16 {
            for target in (0..n as u16).filter(|t| *t != dialer) {
                let front = UdpSocket::bind("127.0.0.1:0")?;
                let back = UdpSocket::bind("127.0.0.1:0")?;
                front.set_read_timeout(Some(POLL))?;
                back.set_read_timeout(Some(POLL))?;
                addresses.insert((dialer, target), front.local_addr()?);
                links.push(Arc::new(Link {
                    dialer,
                    target,
                    front: Arc::new(front),
                    back: Arc::new(back),
                    real: targets[usize::from(target)],
                    dialer_at: Mutex::new(None),
                }));
            }
        }
        let mut threads = Vec::with_capacity(2 * links.len() + 1);
        for link in links {
            let (l, s) = (link.clone(), shared.clone());
            threads.push(spawn(move || l.forward_loop(&s)));
            let s = shared.clone();
            threads.push(spawn(move || link.backward_loop(&s)));
        }
        let sender = shared.clone();
        threads.push(spawn(move || sender.send_loop()));
        Ok(Proxy {
            shared,
            threads,
            addresses,
            validators: n,
        })
    }

    /// Where validator `dialer` must dial validator `target`.
    pub fn address(&self, dialer: u16, target: u16) -> SocketAddr {
        self.addresses[&(dialer, target)]
    }

    /// Cuts every pair in different groups (`group_of[v]` is validator
    /// `v`'s group); `None` heals.
    pub fn set_partition(&self, group_of: Option<&[usize]>) {
        let mut state = self.shared.state.lock().expect("proxy lock");
        state.cut.clear();
        if let Some(group_of) = group_of {
            assert_eq!(
                group_of.len(),
                self.validators,
                "a group for every validator"
            );
            for a in 0..self.validators {
                for b in 0..self.validators {
                    if group_of[a] != group_of[b] {
                        state.cut.insert((a as u16, b as u16));
                    }
                }
            }
        }
    }

    /// Loss, duplication and reordering on (the default) or off.
    pub fn set_faults_on(&self, on: bool) {
        self.shared.state.lock().expect("proxy lock").faults_on = on;
    }

    pub fn stats(&self) -> Stats {
        self.shared.state.lock().expect("proxy lock").stats
    }

    /// Stops every thread and waits for them (within about [`POLL`]).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A proxy thread. The runner is a real network, not simulated code, so
/// the determinism lint's ban on threads does not apply here.
#[allow(clippy::disallowed_methods)]
fn spawn(f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("fault-proxy".into())
        .spawn(f)
        .expect("a proxy thread starts")
}

/// What the proxy costs on this machine ([`measure_overhead`]).
#[derive(Clone, Debug)]
pub struct Overhead {
    /// Round trips of a small datagram to an echo server, direct and
    /// through the proxy (no faults, no added latency), in µs.
    pub direct_p50_us: f64,
    pub direct_p99_us: f64,
    pub proxied_p50_us: f64,
    pub proxied_p99_us: f64,
    /// Datagrams of `datagram_bytes` relayed one way per second, with a
    /// sender that paces itself to what comes out (no kernel drops).
    pub relayed_per_s: f64,
    pub datagram_bytes: usize,
    /// Share of those that arrived (the rest were lost to full buffers).
    pub delivered: f64,
}

/// Measures the proxy's added round-trip time and the datagram rate it
/// sustains one way, against a direct path built in the same run.
pub fn measure_overhead(
    round_trips: usize,
    datagrams: u64,
    datagram_bytes: usize,
) -> std::io::Result<Overhead> {
    // The sink: echoes small datagrams (for latency), counts the rest.
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    sink.set_read_timeout(Some(POLL))?;
    let sink_at = sink.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink_thread = {
        let (stop, received) = (stop.clone(), received.clone());
        spawn(move || {
            let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((len, from)) = sink.recv_from(&mut buf) {
                    if len <= 16 {
                        let _ = sink.send_to(&buf[..len], from);
                    } else {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let proxy = Proxy::start(&[sink_at, sink_at], Faults::none(), 0)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.set_read_timeout(Some(Duration::from_secs(1)))?;
    let time_round_trips = |to: SocketAddr| -> std::io::Result<(f64, f64)> {
        let mut samples = Vec::with_capacity(round_trips);
        let mut buf = [0u8; 16];
        for i in 0..round_trips as u32 {
            let sent = Instant::now();
            client.send_to(&i.to_le_bytes(), to)?;
            client.recv_from(&mut buf)?;
            samples.push(sent.elapsed().as_secs_f64() * 1e6);
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Ok((at(0.5), at(0.99)))
    };
    // Alternate the two paths so a busy moment of the host hits both.
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        direct.push(time_round_trips(sink_at)?);
        proxied.push(time_round_trips(proxy.address(0, 1))?);
    }
    let mean = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        v.iter().map(pick).sum::<f64>() / v.len() as f64
    };
    // Throughput: never more than a window ahead of what the sink has
    // counted (64 of 1,200 bytes fit the default socket buffers), so full
    // buffers lose little; a window that does not drain within 50 ms is
    // taken as lost and the sender goes on.
    const WINDOW: u64 = 64;
    let payload = vec![7u8; datagram_bytes.max(17)];
    let to = proxy.address(0, 1);
    let started = Instant::now();
    for sent in 0..datagrams {
        let waiting = Instant::now();
        while sent >= received.load(Ordering::Relaxed) + WINDOW
            && waiting.elapsed() < Duration::from_millis(50)
        {
            std::thread::yield_now();
        }
        client.send_to(&payload, to)?;
    }
    let waiting = Instant::now();
    while received.load(Ordering::Relaxed) < datagrams
        && waiting.elapsed() < Duration::from_millis(200)
    {
        std::thread::yield_now();
    }
    let relayed_per_s = received.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    proxy.stop();
    stop.store(true, Ordering::Relaxed);
    let _ = sink_thread.join();
    Ok(Overhead {
        direct_p50_us: mean(&direct, |s| s.0),
        direct_p99_us: mean(&direct, |s| s.1),
        proxied_p50_us: mean(&proxied, |s| s.0),
        proxied_p99_us: mean(&proxied, |s| s.1),
        relayed_per_s,
        datagram_bytes: payload.len(),
        delivered: received.load(Ordering::Relaxed) as f64 / datagrams.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server's stop flag and thread.
    type Echo = (Arc<AtomicBool>, JoinHandle<()>);

    /// An echo server standing for a validator: answers every datagram
    /// with the same bytes.
    fn echo() -> (SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(POLL)).unwrap();
        let address = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((len, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..len], from);
                }
            }
        });
        (address, stop, thread)
    }

    /// Sends `count` numbered datagrams through the proxy to validator 1
    /// and returns the numbers echoed back within `wait`. A thread reads
    /// while the sends go out, so no socket buffer overflows: the test is
    /// of the proxy's drops, not the kernel's.
    fn round_trip(proxy: &Proxy, count: u32, wait: Duration) -> Vec<u32> {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let reader = client.try_clone().unwrap();
        let until = Instant::now() + wait;
        let collect = spawn_collecting(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while Instant::now() < until {
                if let Ok((4, _)) = reader.recv_from(&mut buf) {
                    got.push(u32::from_le_bytes(buf[..4].try_into().unwrap()));
                }
            }
            got
        });
        let to = proxy.address(0, 1);
        for i in 0..count {
            client.send_to(&i.to_le_bytes(), to).unwrap();
            if i % 20 == 19 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        collect.join().unwrap()
    }

    #[allow(clippy::disallowed_methods)] // a test thread beside a real proxy
    fn spawn_collecting(f: impl FnOnce() -> Vec<u32> + Send + 'static) -> JoinHandle<Vec<u32>> {
        std::thread::spawn(f)
    }

    fn two_echoes() -> (Vec<SocketAddr>, Vec<Echo>) {
        let (a, sa, ta) = echo();
        let (b, sb, tb) = echo();
        (vec![a, b], vec![(sa, ta), (sb, tb)])
    }

    fn stop_echoes(echoes: Vec<Echo>) {
        for (stop, thread) in echoes {
            stop.store(true, Ordering::Relaxed);
            thread.join().unwrap();
        }
    }

    #[test]
    fn the_overhead_measure_counts_what_it_relays() {
        let o = measure_overhead(50, 2_000, 1_200).unwrap();
        assert!(
            o.relayed_per_s > 0.0 && o.proxied_p50_us > 0.0 && o.direct_p50_us > 0.0,
            "{o:?}"
        );
    }

    #[test]
    fn relays_both_ways_and_delays_by_the_latency() {
        let (targets, echoes) = two_echoes();
        let faults = Faults {
            latency: Latency::Fixed { ms: 30.0 },
            ..Faults::none()
        };
        let proxy = Proxy::start(&targets, faults, 1).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let sent = Instant::now();
        client.send_to(b"ping", proxy.address(0, 1)).unwrap();
        let mut buf = [0u8; 16];
        let (len, from) = client.recv_from(&mut buf).unwrap();
        let round_trip = sent.elapsed();
        assert_eq!(&buf[..len], b"ping");
        assert_eq!(
            from,
            proxy.address(0, 1),
            "answers come from the address dialled"
        );
        assert!(
            round_trip >= Duration::from_millis(60),
            "two 30 ms legs: {round_trip:?}"
        );
        assert_eq!(proxy.stats().relayed, 2);
        proxy.stop();
        stop_echoes(echoes);
    }

    #[test]
    fn a_bandwidth_limit_queues_each_link_behind_what_it_sent() {
        let (targets, echoes) = two_echoes();
        // 1,000 bytes at 100 bytes/ms: 10 ms each on the link to the echo
        // (and again on the way back), so the fifth leaves after ~50 ms.
        let faults = Faults {
            bandwidth_bytes_per_ms: Some(100),
            ..Faults::none()
        };
        let proxy = Proxy::start(&targets, faults, 4).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let sent = Instant::now();
        for _ in 0..5 {
            client.send_to(&[7u8; 1000], proxy.address(0, 1)).unwrap();
        }
        let mut buf = [0u8; 2048];
        let mut arrivals = Vec::new();
        for _ in 0..5 {
            let (len, _) = client.recv_from(&mut buf).unwrap();
            assert_eq!(len, 1000);
            arrivals.push(sent.elapsed());
        }
        assert!(
            arrivals[0] >= Duration::from_millis(20),
            "one datagram, both ways: {arrivals:?}"
        );
        assert!(
            arrivals[4] >= Duration::from_millis(60),
            "five queued on one link: {arrivals:?}"
        );
        assert_eq!(proxy.stats().relayed, 10);
        proxy.stop();
        stop_echoes(echoes);
    }

    #[test]
    fn a_partition_cuts_and_healing_restores() {
        let (targets, echoes) = two_echoes();
        let proxy = Proxy::start(&targets, Faults::none(), 2).unwrap();
        proxy.set_partition(Some(&[0, 1]));
        assert!(round_trip(&proxy, 10, Duration::from_millis(200)).is_empty());
        assert_eq!(proxy.stats().cut_by_partition, 10);
        proxy.set_partition(Some(&[0, 0]));
        assert_eq!(round_trip(&proxy, 10, Duration::from_millis(300)).len(), 10);
        proxy.set_partition(None);
        assert_eq!(round_trip(&proxy, 10, Duration::from_millis(300)).len(), 10);
        proxy.stop();
        stop_echoes(echoes);
    }

    #[test]
    fn loss_and_duplication_follow_their_rates_until_faults_end() {
        let (targets, echoes) = two_echoes();
        let faults = Faults {
            loss: 0.3,
            duplicate: 0.2,
            ..Faults::none()
        };
        let proxy = Proxy::start(&targets, faults, 3).unwrap();
        let got = round_trip(&proxy, 1_000, Duration::from_millis(800));
        // Each leg loses 30% and doubles 20% of what is left: about
        // 0.7 * 1.2 = 0.84 per leg, 0.71 both ways.
        assert!(
            (550..=850).contains(&got.len()),
            "{} came back; {:?}",
            got.len(),
            proxy.stats()
        );
        let unique: BTreeSet<u32> = got.iter().copied().collect();
        assert!(unique.len() < got.len(), "some came back twice");
        let stats = proxy.stats();
        assert!(stats.lost > 0 && stats.duplicated > 0, "{stats:?}");
        proxy.set_faults_on(false);
        assert_eq!(
            round_trip(&proxy, 200, Duration::from_millis(300)).len(),
            200
        );
        proxy.stop();
        stop_echoes(echoes);
    }

    #[test]
    fn reordering_delivers_late_but_delivers() {
        let (targets, echoes) = two_echoes();
        let faults = Faults {
            reorder: 0.5,
            reorder_max_ms: 40.0,
            ..Faults::none()
        };
        let proxy = Proxy::start(&targets, faults, 4).unwrap();
        let got = round_trip(&proxy, 200, Duration::from_millis(500));
        assert_eq!(got.len(), 200, "reordering loses nothing");
        assert!(got.windows(2).any(|w| w[0] > w[1]), "some overtook others");
        proxy.stop();
        stop_echoes(echoes);
    }
}
