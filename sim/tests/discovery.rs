//! Discovery in the simulator (`sim/src/discovery.rs`): validators started
//! from one bootstrap address all learn every address, with the node's
//! book rules and gossip schedule, also over lossy links.

use ballast_sim::discovery::run;
use ballast_sim::scenario::Latency;

const LAN: Latency = Latency::Uniform {
    min_ms: 1.0,
    max_ms: 10.0,
};

#[test]
fn sixteen_validators_from_one_bootstrap_address_learn_every_address() {
    for seed in 0..3 {
        let outcome = run(16, seed, LAN, 0.0);
        let everyone_ms = outcome.everyone_ms().expect("everyone knows everyone");
        // Two sends of the book: the bootstrap validator's, as soon as it
        // has heard from the others, then its news a gap later at most.
        assert!(everyone_ms <= 2 * 250 + 50, "seed {seed}: {everyone_ms} ms");
        // Once everyone is known, books go out every 10 s, not every 0.5 s.
        assert!(outcome.books_sent < 16 * 15 * 8, "{}", outcome.books_sent);
    }
}

#[test]
fn discovery_completes_over_lossy_links() {
    let outcome = run(16, 7, LAN, 0.2);
    let everyone_ms = outcome.everyone_ms().expect("everyone knows everyone");
    assert!(everyone_ms < 5_000, "{everyone_ms} ms");
}
