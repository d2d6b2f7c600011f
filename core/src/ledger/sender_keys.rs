//! A bounded cache of decompressed sender keys.
//!
//! Checking a transaction's signature starts by decompressing its sender's
//! key (a field square root) and checking that the key is not of small
//! order. Measured on the node at 6,000 tx/s, that was 13% of a validator's
//! CPU, and it is the same work again for every transaction a busy account
//! sends. So the parsed key is kept, by its 32 bytes.
//!
//! Direct-mapped (one slot per index, the newest key wins), so a lookup is
//! one comparison and the memory is fixed: [`SENDER_KEY_SLOTS`] slots of
//! about 200 bytes. Only keys that parsed and are not weak are kept, so
//! the cache never changes a verdict: a hit returns exactly what parsing
//! the bytes again would. The slot comes from the key's first bytes; a
//! sender who grinds keys to collide with another's only makes that
//! sender's next check cost what it cost without a cache.

use super::tx::SignatureError;
use ed25519_dalek::VerifyingKey;

/// Slots in a node's cache: the senders active at once on a busy chain,
/// at 16,384 × ~200 bytes ≈ 3 MiB.
pub const SENDER_KEY_SLOTS: usize = 16_384;

pub struct SenderKeys {
    slots: Box<[Option<VerifyingKey>]>,
    hits: u64,
    misses: u64,
}

impl SenderKeys {
    /// A cache of `slots` slots, a power of two (the index is a mask).
    pub fn new(slots: usize) -> SenderKeys {
        assert!(
            slots.is_power_of_two(),
            "sender key slots must be a power of two, got {slots}"
        );
        SenderKeys {
            slots: vec![None; slots].into_boxed_slice(),
            hits: 0,
            misses: 0,
        }
    }

    fn slot(&self, sender: &[u8; 32]) -> usize {
        let low = u64::from_le_bytes(sender[..8].try_into().expect("8 bytes"));
        (low as usize) & (self.slots.len() - 1)
    }

    /// The cached key for these bytes, if any.
    pub fn lookup(&mut self, sender: &[u8; 32]) -> Option<VerifyingKey> {
        let found = self.slots[self.slot(sender)].filter(|key| key.as_bytes() == sender);
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Keeps a key that parsed and is not weak (what
    /// `SignedTransaction::sender_key` returned `Ok` for).
    pub fn remember(&mut self, key: VerifyingKey) {
        debug_assert!(!key.is_weak(), "only valid sender keys are cached");
        let slot = self.slot(key.as_bytes());
        self.slots[slot] = Some(key);
    }

    /// The sender's key, from the cache or parsed (and then kept).
    pub fn key(&mut self, sender: &[u8; 32]) -> Result<VerifyingKey, SignatureError> {
        if let Some(key) = self.lookup(sender) {
            return Ok(key);
        }
        let key = parse_sender(sender)?;
        self.remember(key);
        Ok(key)
    }

    /// Lookups answered from the cache and not, since it was made.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

/// A sender's key, rejecting encodings that are not points and keys of
/// small order (for which signatures can be forged).
pub fn parse_sender(sender: &[u8; 32]) -> Result<VerifyingKey, SignatureError> {
    let key = VerifyingKey::from_bytes(sender).map_err(|_| SignatureError::BadSender)?;
    if key.is_weak() {
        return Err(SignatureError::WeakSender);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;
    use ed25519_dalek::SigningKey;

    fn key(i: u32) -> [u8; 32] {
        SigningKey::from_bytes(&Digest::of(&i.to_le_bytes()).0)
            .verifying_key()
            .to_bytes()
    }

    #[test]
    fn a_hit_returns_what_parsing_returns_and_failures_are_never_kept() {
        let mut cache = SenderKeys::new(64);
        // Valid keys, far more than the slots, twice over: every answer is
        // the parsed key whether it came from the cache or not.
        for round in 0..2 {
            for i in 0..500 {
                let bytes = key(i);
                assert_eq!(cache.key(&bytes), parse_sender(&bytes), "round {round}");
            }
        }
        let (hits, misses) = cache.hits_and_misses();
        assert_eq!(hits + misses, 1000);
        // Not a point (y = 2 has no x on the curve) and a small-order point
        // (the identity): refused every time, never cached.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for _ in 0..3 {
            assert_eq!(cache.key(&not_a_point), Err(SignatureError::BadSender));
            assert_eq!(cache.key(&identity), Err(SignatureError::WeakSender));
        }
        assert!(cache.slots.iter().flatten().all(|k| !k.is_weak()));
    }

    #[test]
    fn a_repeated_sender_hits_and_a_colliding_one_evicts() {
        let mut cache = SenderKeys::new(1);
        let (a, b) = (key(1), key(2));
        cache.key(&a).unwrap();
        cache.key(&a).unwrap();
        assert_eq!(cache.hits_and_misses(), (1, 1));
        // One slot: b replaces a, and a is parsed again.
        cache.key(&b).unwrap();
        assert_eq!(cache.key(&a).unwrap().to_bytes(), a);
        assert_eq!(cache.hits_and_misses(), (1, 3));
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn slots_must_be_a_power_of_two() {
        SenderKeys::new(100);
    }
}
