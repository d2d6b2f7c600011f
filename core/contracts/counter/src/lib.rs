//! A counter: `0 ++ by: u64` adds `by` and returns the new count; `1` returns
//! the count. The smallest useful contract, and the call benchmark's baseline.
#![no_std]

use ballast_contract_sdk as sdk;
use sdk::revert;

const COUNT: &[u8] = b"count";

#[unsafe(no_mangle)]
pub extern "C" fn call() -> u32 {
    sdk::dispatch(|input| match input.first() {
        Some(0) => {
            let Some(by) = sdk::read_u64(input, 1) else {
                return revert::BAD_INPUT;
            };
            let Some(count) = sdk::get_u64(COUNT).checked_add(by) else {
                return revert::OVERFLOW;
            };
            sdk::set_u64(COUNT, count);
            sdk::emit(b"incremented");
            sdk::set_return(&count.to_le_bytes());
            0
        }
        Some(1) => {
            sdk::set_return(&sdk::get_u64(COUNT).to_le_bytes());
            0
        }
        _ => revert::BAD_INPUT,
    })
}
