//! A constant-product (x·y = k) pool between the native coin and the pool's
//! own token T, with a 0.3% fee that stays in the pool. `init` mints all of
//! T to the deployer. Methods (native amounts arrive as the call's value):
//! - `0 ++ token_amount` + value: add liquidity, returns the shares minted;
//! - `1 ++ shares`: remove liquidity, pays out both sides;
//! - `2 ++ min_out` + value: swap native for T, returns T out;
//! - `3 ++ amount_in ++ min_out`: swap T for native, returns native out;
//! - `4 ++ to ++ amount`: transfer T;
//! - `5 ++ owner`: T balance;
//! - `6`: reserves (native, T) and total shares.
#![no_std]

use ballast_contract_sdk as sdk;
use sdk::revert;

const SUPPLY: u64 = 1_000_000_000_000;
const RESERVE_NATIVE: &[u8] = b"rn";
const RESERVE_TOKEN: &[u8] = b"rt";
const SHARES: &[u8] = b"s";
const TOKEN: u8 = b't';
const LIQUIDITY: u8 = b'l';
/// Fee kept by the pool, in thousandths.
const FEE_PER_MILLE: u128 = 3;

fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    let mut x = n;
    let mut y = x.div_ceil(2);
    while y < x {
        x = y;
        y = (x + n / x) / 2;
    }
    x
}

/// Output of a swap of `amount_in` against reserves `(r_in, r_out)`.
fn amount_out(amount_in: u64, r_in: u64, r_out: u64) -> u64 {
    let in_after_fee = u128::from(amount_in) * (1000 - FEE_PER_MILLE);
    let out = in_after_fee * u128::from(r_out) / (u128::from(r_in) * 1000 + in_after_fee);
    out as u64 // below r_out, so it fits
}

fn add(key: &[u8], amount: u64) -> Result<(), u32> {
    let v = sdk::get_u64(key)
        .checked_add(amount)
        .ok_or(revert::OVERFLOW)?;
    sdk::set_u64(key, v);
    Ok(())
}

fn sub(key: &[u8], amount: u64) -> Result<(), u32> {
    let v = sdk::get_u64(key)
        .checked_sub(amount)
        .ok_or(revert::INSUFFICIENT)?;
    sdk::set_u64(key, v);
    Ok(())
}

#[unsafe(no_mangle)]
pub extern "C" fn init() -> u32 {
    sdk::set_u64(&sdk::key(TOKEN, &sdk::caller()), SUPPLY);
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn call() -> u32 {
    sdk::dispatch(|input| match run(input) {
        Ok(()) => 0,
        Err(code) => code,
    })
}

fn run(input: &[u8]) -> Result<(), u32> {
    let caller = sdk::caller();
    let arg = |at| sdk::read_u64(input, at).ok_or(revert::BAD_INPUT);
    let (rn, rt, shares) = (
        sdk::get_u64(RESERVE_NATIVE),
        sdk::get_u64(RESERVE_TOKEN),
        sdk::get_u64(SHARES),
    );
    match input.first() {
        Some(0) => {
            let (native, token) = (sdk::value(), arg(1)?);
            let minted = if shares == 0 {
                isqrt(u128::from(native) * u128::from(token))
            } else {
                let by_native = u128::from(native) * u128::from(shares) / u128::from(rn);
                let by_token = u128::from(token) * u128::from(shares) / u128::from(rt);
                by_native.min(by_token)
            };
            let minted = u64::try_from(minted).map_err(|_| revert::OVERFLOW)?;
            if minted == 0 {
                return Err(revert::REJECTED);
            }
            sub(&sdk::key(TOKEN, &caller), token)?;
            add(RESERVE_NATIVE, native)?;
            add(RESERVE_TOKEN, token)?;
            add(SHARES, minted)?;
            add(&sdk::key(LIQUIDITY, &caller), minted)?;
            sdk::set_return(&minted.to_le_bytes());
        }
        Some(1) => {
            let burned = arg(1)?;
            if burned == 0 {
                return Err(revert::REJECTED);
            }
            sub(&sdk::key(LIQUIDITY, &caller), burned)?;
            let native = (u128::from(burned) * u128::from(rn) / u128::from(shares)) as u64;
            let token = (u128::from(burned) * u128::from(rt) / u128::from(shares)) as u64;
            sub(SHARES, burned)?;
            sub(RESERVE_NATIVE, native)?;
            sub(RESERVE_TOKEN, token)?;
            add(&sdk::key(TOKEN, &caller), token)?;
            if !sdk::transfer(&caller, native) {
                return Err(revert::INSUFFICIENT);
            }
        }
        Some(2) => {
            let (native_in, min_out) = (sdk::value(), arg(1)?);
            if rn == 0 || rt == 0 || native_in == 0 {
                return Err(revert::REJECTED);
            }
            let out = amount_out(native_in, rn, rt);
            if out == 0 || out < min_out {
                return Err(revert::REJECTED);
            }
            add(RESERVE_NATIVE, native_in)?;
            sub(RESERVE_TOKEN, out)?;
            add(&sdk::key(TOKEN, &caller), out)?;
            sdk::emit(b"swapped");
            sdk::set_return(&out.to_le_bytes());
        }
        Some(3) => {
            let (token_in, min_out) = (arg(1)?, arg(9)?);
            if rn == 0 || rt == 0 || token_in == 0 {
                return Err(revert::REJECTED);
            }
            let out = amount_out(token_in, rt, rn);
            if out == 0 || out < min_out {
                return Err(revert::REJECTED);
            }
            sub(&sdk::key(TOKEN, &caller), token_in)?;
            add(RESERVE_TOKEN, token_in)?;
            sub(RESERVE_NATIVE, out)?;
            if !sdk::transfer(&caller, out) {
                return Err(revert::INSUFFICIENT);
            }
            sdk::emit(b"swapped");
            sdk::set_return(&out.to_le_bytes());
        }
        Some(4) => {
            let to = sdk::read_address(input, 1).ok_or(revert::BAD_INPUT)?;
            let amount = arg(33)?;
            sub(&sdk::key(TOKEN, &caller), amount)?;
            add(&sdk::key(TOKEN, &to), amount)?;
        }
        Some(5) => {
            let owner = sdk::read_address(input, 1).ok_or(revert::BAD_INPUT)?;
            sdk::set_return(&sdk::get_u64(&sdk::key(TOKEN, &owner)).to_le_bytes());
        }
        Some(6) => {
            let mut out = [0u8; 24];
            out[..8].copy_from_slice(&rn.to_le_bytes());
            out[8..16].copy_from_slice(&rt.to_le_bytes());
            out[16..].copy_from_slice(&shares.to_le_bytes());
            sdk::set_return(&out);
        }
        _ => return Err(revert::BAD_INPUT),
    }
    Ok(())
}
