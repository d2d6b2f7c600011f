//! An escrow of native coins between a buyer (the caller who opens it), a
//! seller and an arbiter.
//! - `0 ++ seller ++ arbiter` with value > 0: opens escrow, returns its id;
//! - `1 ++ id`: release to the seller (buyer or arbiter only);
//! - `2 ++ id`: refund to the buyer (seller or arbiter only);
//! - `3 ++ id`: returns `buyer ++ seller ++ arbiter ++ amount ++ open`.
#![no_std]

use ballast_contract_sdk as sdk;
use sdk::{Address, revert};

const NEXT_ID: &[u8] = b"next";
/// buyer, seller, arbiter, amount, open flag.
const RECORD_BYTES: usize = 32 * 3 + 8 + 1;

fn record_key(id: u64) -> [u8; 9] {
    let mut k = [b'e'; 9];
    k[1..].copy_from_slice(&id.to_le_bytes());
    k
}

struct Escrow {
    buyer: Address,
    seller: Address,
    arbiter: Address,
    amount: u64,
    open: bool,
}

impl Escrow {
    fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut r = [0u8; RECORD_BYTES];
        r[..32].copy_from_slice(&self.buyer);
        r[32..64].copy_from_slice(&self.seller);
        r[64..96].copy_from_slice(&self.arbiter);
        r[96..104].copy_from_slice(&self.amount.to_le_bytes());
        r[104] = self.open as u8;
        r
    }

    fn load(id: u64) -> Option<Escrow> {
        let mut r = [0u8; RECORD_BYTES];
        if sdk::get(&record_key(id), &mut r)? != RECORD_BYTES {
            return None;
        }
        Some(Escrow {
            buyer: sdk::read_address(&r, 0)?,
            seller: sdk::read_address(&r, 32)?,
            arbiter: sdk::read_address(&r, 64)?,
            amount: sdk::read_u64(&r, 96)?,
            open: r[104] == 1,
        })
    }
}

/// Pays out an open escrow to `to` if the caller is one of `allowed`.
fn settle(id: u64, pay_buyer: bool) -> u32 {
    let Some(mut escrow) = Escrow::load(id) else {
        return revert::NOT_FOUND;
    };
    if !escrow.open {
        return revert::REJECTED;
    }
    let caller = sdk::caller();
    let (party, to) = if pay_buyer {
        (escrow.seller, escrow.buyer)
    } else {
        (escrow.buyer, escrow.seller)
    };
    if caller != party && caller != escrow.arbiter {
        return revert::UNAUTHORIZED;
    }
    if !sdk::transfer(&to, escrow.amount) {
        return revert::INSUFFICIENT;
    }
    escrow.open = false;
    sdk::set(&record_key(id), &escrow.encode());
    sdk::emit(if pay_buyer { b"refunded" } else { b"released" });
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn call() -> u32 {
    sdk::dispatch(|input| match input.first() {
        Some(0) => {
            let (Some(seller), Some(arbiter)) =
                (sdk::read_address(input, 1), sdk::read_address(input, 33))
            else {
                return revert::BAD_INPUT;
            };
            let amount = sdk::value();
            if amount == 0 {
                return revert::REJECTED;
            }
            let id = sdk::get_u64(NEXT_ID);
            sdk::set_u64(NEXT_ID, id + 1);
            let escrow = Escrow {
                buyer: sdk::caller(),
                seller,
                arbiter,
                amount,
                open: true,
            };
            sdk::set(&record_key(id), &escrow.encode());
            sdk::emit(b"opened");
            sdk::set_return(&id.to_le_bytes());
            0
        }
        Some(op @ (1 | 2)) => match sdk::read_u64(input, 1) {
            Some(id) => settle(id, *op == 2),
            None => revert::BAD_INPUT,
        },
        Some(3) => {
            let Some(escrow) = sdk::read_u64(input, 1).and_then(Escrow::load) else {
                return revert::NOT_FOUND;
            };
            sdk::set_return(&escrow.encode());
            0
        }
        _ => revert::BAD_INPUT,
    })
}
