//! A fungible token. `init` mints the whole supply to the deployer.
//! Methods: `0 ++ to ++ amount` transfers from the caller; `1 ++ owner`
//! returns a balance; `2` returns the total supply. Each transfer emits
//! `from ++ to ++ amount`.
#![no_std]

use ballast_contract_sdk as sdk;
use sdk::revert;

/// The fixed supply, minted once at deployment.
const SUPPLY: u64 = 1_000_000_000_000;
const BALANCE: u8 = b'b';
const TOTAL: &[u8] = b"supply";

#[unsafe(no_mangle)]
pub extern "C" fn init() -> u32 {
    sdk::set_u64(&sdk::key(BALANCE, &sdk::caller()), SUPPLY);
    sdk::set_u64(TOTAL, SUPPLY);
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn call() -> u32 {
    sdk::dispatch(|input| match input.first() {
        Some(0) => {
            let (Some(to), Some(amount)) = (sdk::read_address(input, 1), sdk::read_u64(input, 33))
            else {
                return revert::BAD_INPUT;
            };
            let from = sdk::caller();
            let from_key = sdk::key(BALANCE, &from);
            let from_balance = sdk::get_u64(&from_key);
            if from_balance < amount {
                return revert::INSUFFICIENT;
            }
            sdk::set_u64(&from_key, from_balance - amount);
            let to_key = sdk::key(BALANCE, &to);
            // Cannot overflow: every balance is part of the fixed supply.
            sdk::set_u64(&to_key, sdk::get_u64(&to_key) + amount);
            let mut event = [0u8; 72];
            event[..32].copy_from_slice(&from);
            event[32..64].copy_from_slice(&to);
            event[64..].copy_from_slice(&amount.to_le_bytes());
            sdk::emit(&event);
            0
        }
        Some(1) => {
            let Some(owner) = sdk::read_address(input, 1) else {
                return revert::BAD_INPUT;
            };
            sdk::set_return(&sdk::get_u64(&sdk::key(BALANCE, &owner)).to_le_bytes());
            0
        }
        Some(2) => {
            sdk::set_return(&sdk::get_u64(TOTAL).to_le_bytes());
            0
        }
        _ => revert::BAD_INPUT,
    })
}
