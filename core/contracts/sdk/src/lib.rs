//! The host API of Ballast contracts, for `no_std` Rust built to
//! `wasm32-unknown-unknown`.
//!
//! A contract exports `call() -> u32` (0 = success, anything else reverts
//! every change the call made, with that code) and may export `init() -> u32`,
//! run once at deployment with the deployer as caller. Inputs and outputs are
//! raw bytes: the first input byte names the method by convention. The host
//! charges gas (WASM fuel) for every operator and for each host call.
#![no_std]

/// An account or contract address: an ed25519 public key, or a hash for
/// contracts.
pub type Address = [u8; 32];

/// Largest input a contract built with this SDK reads (the chain allows
/// more; these contracts need less).
pub const MAX_INPUT_BYTES: usize = 256;

mod sys {
    #[link(wasm_import_module = "ballast")]
    unsafe extern "C" {
        pub fn input_len() -> u32;
        pub fn input_read(ptr: *mut u8);
        pub fn set_return(ptr: *const u8, len: u32);
        pub fn storage_get(key: *const u8, key_len: u32, value: *mut u8, value_cap: u32) -> i32;
        pub fn storage_set(key: *const u8, key_len: u32, value: *const u8, value_len: u32);
        pub fn storage_remove(key: *const u8, key_len: u32);
        pub fn caller(ptr: *mut u8);
        pub fn self_address(ptr: *mut u8);
        pub fn value() -> u64;
        pub fn transfer(to: *const u8, amount: u64) -> u32;
        pub fn block_height() -> u64;
        pub fn emit_event(ptr: *const u8, len: u32);
    }
}

/// Revert codes shared by the example contracts.
pub mod revert {
    /// The input is too short, too long, or names no method.
    pub const BAD_INPUT: u32 = 1;
    /// A balance does not cover the amount.
    pub const INSUFFICIENT: u32 = 2;
    /// The caller may not do this.
    pub const UNAUTHORIZED: u32 = 3;
    /// No such record.
    pub const NOT_FOUND: u32 = 4;
    /// Arithmetic would overflow.
    pub const OVERFLOW: u32 = 5;
    /// A slippage bound or precondition failed.
    pub const REJECTED: u32 = 6;
}

/// The call's input, copied into `buf`; `None` if it does not fit.
pub fn input(buf: &mut [u8; MAX_INPUT_BYTES]) -> Option<&[u8]> {
    // SAFETY: the host writes exactly `input_len()` bytes, checked to fit.
    unsafe {
        let len = sys::input_len() as usize;
        if len > buf.len() {
            return None;
        }
        sys::input_read(buf.as_mut_ptr());
        Some(&buf[..len])
    }
}

/// Runs `method` on the call's input; an input longer than
/// [`MAX_INPUT_BYTES`] reverts with [`revert::BAD_INPUT`]. The body of every
/// contract's `call`.
pub fn dispatch(method: impl FnOnce(&[u8]) -> u32) -> u32 {
    let mut buf = [0u8; MAX_INPUT_BYTES];
    match input(&mut buf) {
        Some(input) => method(input),
        None => revert::BAD_INPUT,
    }
}

/// Sets the bytes the call returns to its caller (kept in the receipt).
pub fn set_return(bytes: &[u8]) {
    // SAFETY: a valid slice.
    unsafe { sys::set_return(bytes.as_ptr(), bytes.len() as u32) }
}

/// Reads a `u64` stored under `key` (0 when absent).
pub fn get_u64(key: &[u8]) -> u64 {
    let mut value = [0u8; 8];
    // SAFETY: the host copies at most 8 bytes into `value`.
    let len = unsafe { sys::storage_get(key.as_ptr(), key.len() as u32, value.as_mut_ptr(), 8) };
    if len == 8 {
        u64::from_le_bytes(value)
    } else {
        0
    }
}

/// Stores a `u64` under `key`; 0 removes the entry, so empty balances cost
/// no state.
pub fn set_u64(key: &[u8], value: u64) {
    if value == 0 {
        remove(key);
    } else {
        set(key, &value.to_le_bytes());
    }
}

/// Reads the value stored under `key` into `buf`; its length, or `None`
/// when absent. A longer value is cut to `buf`'s length.
pub fn get(key: &[u8], buf: &mut [u8]) -> Option<usize> {
    // SAFETY: the host copies at most `buf.len()` bytes.
    let len = unsafe {
        sys::storage_get(
            key.as_ptr(),
            key.len() as u32,
            buf.as_mut_ptr(),
            buf.len() as u32,
        )
    };
    (len >= 0).then_some(len as usize)
}

/// Stores `value` under `key`.
pub fn set(key: &[u8], value: &[u8]) {
    // SAFETY: valid slices.
    unsafe {
        sys::storage_set(
            key.as_ptr(),
            key.len() as u32,
            value.as_ptr(),
            value.len() as u32,
        )
    }
}

/// Removes the entry under `key`.
pub fn remove(key: &[u8]) {
    // SAFETY: a valid slice.
    unsafe { sys::storage_remove(key.as_ptr(), key.len() as u32) }
}

/// Who called: the transaction's sender (at `init`, the deployer).
pub fn caller() -> Address {
    let mut a = [0u8; 32];
    // SAFETY: the host writes 32 bytes.
    unsafe { sys::caller(a.as_mut_ptr()) };
    a
}

/// This contract's own address.
pub fn self_address() -> Address {
    let mut a = [0u8; 32];
    // SAFETY: the host writes 32 bytes.
    unsafe { sys::self_address(a.as_mut_ptr()) };
    a
}

/// Native coins the caller sent with this call (already in the contract's
/// balance).
pub fn value() -> u64 {
    // SAFETY: no arguments.
    unsafe { sys::value() }
}

/// Pays `amount` native coins from this contract to `to`; false if the
/// contract's balance does not cover it.
pub fn transfer(to: &Address, amount: u64) -> bool {
    // SAFETY: `to` is 32 readable bytes.
    unsafe { sys::transfer(to.as_ptr(), amount) == 0 }
}

/// Height of the block this call executes in.
pub fn block_height() -> u64 {
    // SAFETY: no arguments.
    unsafe { sys::block_height() }
}

/// Adds an event to the receipt.
pub fn emit(bytes: &[u8]) {
    // SAFETY: a valid slice.
    unsafe { sys::emit_event(bytes.as_ptr(), bytes.len() as u32) }
}

/// Reads a little-endian `u64` at `at`, if the input is long enough.
pub fn read_u64(input: &[u8], at: usize) -> Option<u64> {
    let bytes = input.get(at..at + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads an address at `at`, if the input is long enough.
pub fn read_address(input: &[u8], at: usize) -> Option<Address> {
    input.get(at..at + 32)?.try_into().ok()
}

/// A storage key: a one-byte prefix then an address.
pub fn key(prefix: u8, address: &Address) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = prefix;
    k[1..].copy_from_slice(address);
    k
}

/// A panic traps: the host ends the call with an error and charges all
/// its gas.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
