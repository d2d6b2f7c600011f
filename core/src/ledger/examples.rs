//! The example contracts (`core/contracts/`), built to WASM by `build.rs`,
//! and encoders for their inputs. Tests, the simulator's workload and the
//! benchmarks deploy these bytes.

use super::tx::Address;

pub const COUNTER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/counter.wasm"));
pub const TOKEN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/token.wasm"));
pub const ESCROW: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/escrow.wasm"));
pub const SWAP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swap.wasm"));

/// Supply the token and swap contracts mint to their deployer.
pub const TOKEN_SUPPLY: u64 = 1_000_000_000_000;

fn encode(method: u8, addresses: &[&Address], numbers: &[u64]) -> Vec<u8> {
    let mut input = vec![method];
    for a in addresses {
        input.extend_from_slice(*a);
    }
    for n in numbers {
        input.extend_from_slice(&n.to_le_bytes());
    }
    input
}

/// Reads a `u64` a contract returned.
pub fn decode_u64(output: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(output.get(..8)?.try_into().ok()?))
}

pub mod counter {
    /// Adds `by`; returns the new count.
    pub fn increment(by: u64) -> Vec<u8> {
        super::encode(0, &[], &[by])
    }
    pub fn get() -> Vec<u8> {
        vec![1]
    }
}

pub mod token {
    use super::Address;
    pub fn transfer(to: &Address, amount: u64) -> Vec<u8> {
        super::encode(0, &[to], &[amount])
    }
    pub fn balance_of(owner: &Address) -> Vec<u8> {
        super::encode(1, &[owner], &[])
    }
    pub fn total_supply() -> Vec<u8> {
        vec![2]
    }
}

pub mod escrow {
    use super::Address;
    /// Send the escrowed amount as the call's value; returns the id.
    pub fn open(seller: &Address, arbiter: &Address) -> Vec<u8> {
        super::encode(0, &[seller, arbiter], &[])
    }
    pub fn release(id: u64) -> Vec<u8> {
        super::encode(1, &[], &[id])
    }
    pub fn refund(id: u64) -> Vec<u8> {
        super::encode(2, &[], &[id])
    }
    /// Returns buyer, seller, arbiter (32 bytes each), amount, open flag.
    pub fn get(id: u64) -> Vec<u8> {
        super::encode(3, &[], &[id])
    }
}

pub mod swap {
    use super::Address;
    /// Send the native side as the call's value; returns shares minted.
    pub fn add_liquidity(token_amount: u64) -> Vec<u8> {
        super::encode(0, &[], &[token_amount])
    }
    pub fn remove_liquidity(shares: u64) -> Vec<u8> {
        super::encode(1, &[], &[shares])
    }
    /// Send the native amount as the call's value; returns tokens out.
    pub fn native_for_token(min_out: u64) -> Vec<u8> {
        super::encode(2, &[], &[min_out])
    }
    pub fn token_for_native(amount_in: u64, min_out: u64) -> Vec<u8> {
        super::encode(3, &[], &[amount_in, min_out])
    }
    pub fn transfer(to: &Address, amount: u64) -> Vec<u8> {
        super::encode(4, &[to], &[amount])
    }
    pub fn balance_of(owner: &Address) -> Vec<u8> {
        super::encode(5, &[owner], &[])
    }
    /// Returns the native reserve, the token reserve and the total shares.
    pub fn reserves() -> Vec<u8> {
        vec![6]
    }
}
