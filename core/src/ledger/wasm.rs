//! The contract virtual machine: wasmtime configured to be deterministic and
//! bounded, a small host API, and a cache of compiled modules by code hash.
//!
//! Determinism: no SIMD, no threads, no memory64 or multi-memory, NaNs
//! canonicalised, fuel counted per WASM operator (gas), memory pages, table
//! elements and instances bounded per call. The call stack is metered in
//! WASM ([`super::stack_meter`], injected before compilation): how deep a
//! call may recurse does not depend on the native frame sizes of the
//! machine, and the native limit ([`MAX_STACK_BYTES`], twice the metered
//! budget) is only a backstop. Every trap costs the whole gas limit, so
//! receipts and state agree across validators built from the same source.
//!
//! ABI (see `core/contracts/sdk`): a contract exports `memory`,
//! `call() -> i32` (0 = success, other values revert with that code) and
//! optionally `init() -> i32`, run once at deployment. It imports only from
//! the module `ballast`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, InstancePre, Linker, Memory, Module, Store,
    StoreLimits, StoreLimitsBuilder, Trap, ValType,
};

use super::execute::Ledger;
use super::tx::Address;
use crate::types::{Digest, Height};

/// Largest linear memory a contract may have: 16 pages of 64 KiB = 1 MiB.
pub const MAX_MEMORY_PAGES: u64 = 16;
/// Largest table a contract may have.
pub const MAX_TABLE_ELEMENTS: usize = 1_024;
/// Native stack a call may use; deep recursion traps here.
pub const MAX_STACK_BYTES: usize = 512 * 1024;
/// Longest storage key a contract may use.
pub const MAX_STORAGE_KEY_BYTES: usize = 128;
/// Largest value a contract may store under one key.
pub const MAX_STORAGE_VALUE_BYTES: usize = 4 * 1024;
/// Largest return value of a call.
pub const MAX_RETURN_BYTES: usize = 4 * 1024;
/// Most events one call may emit, and the largest one.
pub const MAX_EVENTS: usize = 64;
pub const MAX_EVENT_BYTES: usize = 256;
/// Compiled modules kept in memory; more are recompiled on use.
pub const MAX_CACHED_MODULES: usize = 256;

/// Gas of each host call, on top of the WASM operators (1 gas each).
pub const HOST_CALL_GAS: u64 = 50;
/// Gas of a storage read, plus [`STORAGE_BYTE_GAS`] per byte read.
pub const STORAGE_READ_GAS: u64 = 200;
/// Gas of a storage write or removal, plus [`STORAGE_BYTE_GAS`] per byte.
pub const STORAGE_WRITE_GAS: u64 = 1_000;
pub const STORAGE_BYTE_GAS: u64 = 2;
/// Gas of a native transfer out of the contract.
pub const TRANSFER_GAS: u64 = 500;

/// Why a contract could not be deployed or its call failed. Every variant is
/// decided the same way on every validator (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("not a valid WASM module: {0}")]
    InvalidModule(String),
    #[error("imports {0}, which the host does not provide")]
    UnknownImport(String),
    #[error("export `{0}` is missing or has the wrong type")]
    MissingExport(&'static str),
    #[error("declares {pages} memory pages; at most {MAX_MEMORY_PAGES}")]
    MemoryTooLarge { pages: u64 },
    #[error("no contract at this address")]
    NoContract,
    #[error("ran out of gas")]
    OutOfGas,
    #[error("trapped: {0}")]
    Trapped(TrapKind),
    #[error("host call refused: {0}")]
    Host(HostFault),
    #[error("exceeded a resource limit (memory, table or instances)")]
    ResourceLimit,
    #[error("reverted with code {0}")]
    Reverted(u32),
}

/// A WASM trap, by kind (wasmtime's own enum is not exhaustive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrapKind {
    #[error("unreachable executed (a panic)")]
    Unreachable,
    #[error("call stack exhausted")]
    StackOverflow,
    #[error("out-of-bounds memory access")]
    MemoryOutOfBounds,
    #[error("integer division by zero or overflow")]
    Arithmetic,
    #[error("bad indirect call")]
    IndirectCall,
    #[error("other trap")]
    Other,
}

/// A host call the contract got wrong: it ends the call like a trap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostFault {
    #[error("pointer outside the contract's memory")]
    BadPointer,
    #[error("storage key longer than {MAX_STORAGE_KEY_BYTES} bytes")]
    KeyTooLong,
    #[error("storage value larger than {MAX_STORAGE_VALUE_BYTES} bytes")]
    ValueTooLarge,
    #[error("return value larger than {MAX_RETURN_BYTES} bytes")]
    ReturnTooLarge,
    #[error("more than {MAX_EVENTS} events or one above {MAX_EVENT_BYTES} bytes")]
    EventLimit,
    #[error("the contract exports no memory")]
    NoMemory,
    #[error("out of gas in a host call")]
    OutOfGas,
}

/// What a call sees of its context and may change: the ledger (its own
/// storage, balances) and what it returns.
pub struct CallState {
    pub ledger: Ledger,
    pub contract: Address,
    pub caller: Address,
    pub value: u64,
    pub height: Height,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    pub events: Vec<Vec<u8>>,
    /// Native transfers the contract made: (to, amount).
    pub transfers: Vec<(Address, u64)>,
    limits: StoreLimits,
}

impl CallState {
    pub fn new(
        ledger: Ledger,
        contract: Address,
        caller: Address,
        value: u64,
        height: Height,
        input: Vec<u8>,
    ) -> CallState {
        CallState {
            ledger,
            contract,
            caller,
            value,
            height,
            input,
            output: Vec::new(),
            events: Vec::new(),
            transfers: Vec::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size((MAX_MEMORY_PAGES * 65_536) as usize)
                .table_elements(MAX_TABLE_ELEMENTS)
                .instances(1)
                .memories(1)
                .tables(1)
                .build(),
        }
    }
}

/// A compiled, linked contract, ready to instantiate.
pub struct Compiled {
    pre: InstancePre<CallState>,
    pub has_init: bool,
}

/// The engine, the host functions and the module cache. Cloning shares
/// them. The cache only saves time: a miss recompiles the same code to the
/// same behaviour.
#[derive(Clone)]
pub struct Vm {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<CallState>,
    modules: Mutex<BTreeMap<Digest, Arc<Compiled>>>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vm")
    }
}

impl Default for Vm {
    fn default() -> Vm {
        Vm::new()
    }
}

fn deterministic_config() -> Config {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        .wasm_simd(false)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .wasm_tail_call(false)
        .max_wasm_stack(MAX_STACK_BYTES);
    config
}

impl Vm {
    pub fn new() -> Vm {
        let engine = Engine::new(&deterministic_config()).expect("a valid wasmtime config");
        let mut linker = Linker::new(&engine);
        host::define(&mut linker).expect("host functions have distinct names");
        Vm {
            inner: Arc::new(Inner {
                engine,
                linker,
                modules: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Compiles and checks `code` (or finds it in the cache): valid WASM,
    /// imports only from the host, exports `memory` and `call`, memory
    /// within bounds.
    pub fn compile(&self, code_hash: Digest, code: &[u8]) -> Result<Arc<Compiled>, ContractError> {
        if let Some(compiled) = self.cached(&code_hash) {
            return Ok(compiled);
        }
        let metered = super::stack_meter::instrument(code)
            .map_err(|e| ContractError::InvalidModule(first_line(&e)))?;
        let module = Module::new(&self.inner.engine, &metered)
            .map_err(|e| ContractError::InvalidModule(first_line(&e.to_string())))?;
        check_exports(&module)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| ContractError::UnknownImport(first_line(&e.to_string())))?;
        let has_init = matches!(module.get_export("init"), Some(ExternType::Func(f))
            if f.params().len() == 0 && result_is_i32(&f));
        let compiled = Arc::new(Compiled { pre, has_init });
        let mut modules = self.inner.modules.lock().expect("no panics while held");
        if modules.len() >= MAX_CACHED_MODULES {
            modules.pop_first();
        }
        modules.insert(code_hash, compiled.clone());
        Ok(compiled)
    }

    fn cached(&self, code_hash: &Digest) -> Option<Arc<Compiled>> {
        let modules = self.inner.modules.lock().expect("no panics while held");
        modules.get(code_hash).cloned()
    }

    /// Runs `entry` (`call` or `init`) with at most `gas_limit` gas. Returns
    /// the state (with the ledger as the contract left it: the caller drops
    /// it on error), the outcome and the gas used.
    pub fn run(
        &self,
        compiled: &Compiled,
        state: CallState,
        entry: &str,
        gas_limit: u64,
    ) -> (CallState, Result<(), ContractError>, u64) {
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(gas_limit).expect("fuel is enabled");
        let result = compiled
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&e, true))
            .and_then(|instance| {
                let func = instance
                    .get_typed_func::<(), u32>(&mut store, entry)
                    .map_err(|_| ContractError::MissingExport("call"))?;
                func.call(&mut store, ()).map_err(|e| {
                    // The meter stops a call with `unreachable`; its global
                    // tells that stop from the contract's own.
                    let units = instance
                        .get_global(&mut store, super::stack_meter::METER_EXPORT)
                        .and_then(|g| g.get(&mut store).i32());
                    match units {
                        Some(units) if units as u32 > super::stack_meter::MAX_STACK_UNITS => {
                            ContractError::Trapped(TrapKind::StackOverflow)
                        }
                        _ => classify(&e, false),
                    }
                })
            });
        let left = store.get_fuel().expect("fuel is enabled");
        let state = store.into_data();
        match result {
            Ok(0) => (state, Ok(()), gas_limit - left),
            Ok(code) => (state, Err(ContractError::Reverted(code)), gas_limit - left),
            // A trap costs all the gas: see the module docs.
            Err(error) => (state, Err(error), gas_limit),
        }
    }
}

fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

fn result_is_i32(f: &wasmtime::FuncType) -> bool {
    let results: Vec<ValType> = f.results().collect();
    results.len() == 1 && matches!(results[0], ValType::I32)
}

fn check_exports(module: &Module) -> Result<(), ContractError> {
    match module.get_export("call") {
        Some(ExternType::Func(f)) if f.params().len() == 0 && result_is_i32(&f) => {}
        _ => return Err(ContractError::MissingExport("call")),
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(memory)) => {
            if memory.minimum() > MAX_MEMORY_PAGES {
                return Err(ContractError::MemoryTooLarge {
                    pages: memory.minimum(),
                });
            }
        }
        _ => return Err(ContractError::MissingExport("memory")),
    }
    if let Some(ExternType::Func(f)) = module.get_export("init")
        && !(f.params().len() == 0 && result_is_i32(&f))
    {
        return Err(ContractError::MissingExport("init"));
    }
    Ok(())
}

fn classify(error: &wasmtime::Error, instantiating: bool) -> ContractError {
    if let Some(fault) = error.downcast_ref::<HostFault>() {
        return match fault {
            HostFault::OutOfGas => ContractError::OutOfGas,
            other => ContractError::Host(*other),
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => ContractError::OutOfGas,
            Trap::StackOverflow => ContractError::Trapped(TrapKind::StackOverflow),
            Trap::MemoryOutOfBounds | Trap::HeapMisaligned => {
                ContractError::Trapped(TrapKind::MemoryOutOfBounds)
            }
            Trap::UnreachableCodeReached => ContractError::Trapped(TrapKind::Unreachable),
            Trap::IntegerDivisionByZero | Trap::IntegerOverflow | Trap::BadConversionToInteger => {
                ContractError::Trapped(TrapKind::Arithmetic)
            }
            Trap::IndirectCallToNull | Trap::BadSignature | Trap::TableOutOfBounds => {
                ContractError::Trapped(TrapKind::IndirectCall)
            }
            _ => ContractError::Trapped(TrapKind::Other),
        };
    }
    if instantiating {
        // The store's limiter refused a memory, table or instance.
        ContractError::ResourceLimit
    } else {
        ContractError::Trapped(TrapKind::Other)
    }
}

/// The host API, in the module `ballast`.
mod host {
    use super::*;

    type Result<T> = wasmtime::Result<T>;

    fn fault(f: HostFault) -> wasmtime::Error {
        wasmtime::Error::new(f)
    }

    fn charge(caller: &mut Caller<'_, CallState>, gas: u64) -> Result<()> {
        let left = caller.get_fuel()?;
        if left < gas {
            caller.set_fuel(0)?;
            return Err(fault(HostFault::OutOfGas));
        }
        caller.set_fuel(left - gas)?;
        Ok(())
    }

    fn memory(caller: &mut Caller<'_, CallState>) -> Result<Memory> {
        match caller.get_export("memory") {
            Some(Extern::Memory(m)) => Ok(m),
            _ => Err(fault(HostFault::NoMemory)),
        }
    }

    fn read(caller: &mut Caller<'_, CallState>, ptr: u32, len: u32) -> Result<Vec<u8>> {
        let memory = memory(caller)?;
        let start = ptr as usize;
        let end = start.checked_add(len as usize);
        end.and_then(|end| memory.data(&*caller).get(start..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| fault(HostFault::BadPointer))
    }

    fn write(caller: &mut Caller<'_, CallState>, ptr: u32, bytes: &[u8]) -> Result<()> {
        let memory = memory(caller)?;
        let start = ptr as usize;
        let end = start.checked_add(bytes.len());
        end.and_then(|end| memory.data_mut(&mut *caller).get_mut(start..end))
            .ok_or_else(|| fault(HostFault::BadPointer))?
            .copy_from_slice(bytes);
        Ok(())
    }

    fn read_key(caller: &mut Caller<'_, CallState>, ptr: u32, len: u32) -> Result<Vec<u8>> {
        if len as usize > MAX_STORAGE_KEY_BYTES {
            return Err(fault(HostFault::KeyTooLong));
        }
        read(caller, ptr, len)
    }

    pub(super) fn define(linker: &mut Linker<CallState>) -> Result<()> {
        const M: &str = "ballast";
        linker.func_wrap(M, "input_len", |mut c: Caller<'_, CallState>| {
            charge(&mut c, HOST_CALL_GAS)?;
            Ok(c.data().input.len() as u32)
        })?;
        linker.func_wrap(M, "input_read", |mut c: Caller<'_, CallState>, ptr: u32| {
            let input = c.data().input.clone();
            charge(&mut c, HOST_CALL_GAS + input.len() as u64)?;
            write(&mut c, ptr, &input)
        })?;
        linker.func_wrap(
            M,
            "set_return",
            |mut c: Caller<'_, CallState>, ptr: u32, len: u32| {
                if len as usize > MAX_RETURN_BYTES {
                    return Err(fault(HostFault::ReturnTooLarge));
                }
                charge(&mut c, HOST_CALL_GAS + u64::from(len))?;
                c.data_mut().output = read(&mut c, ptr, len)?;
                Ok(())
            },
        )?;
        linker.func_wrap(
            M,
            "storage_get",
            |mut c: Caller<'_, CallState>, kp: u32, kl: u32, vp: u32, cap: u32| {
                charge(&mut c, STORAGE_READ_GAS)?;
                let key = read_key(&mut c, kp, kl)?;
                let s = c.data();
                let Some(value) = s.ledger.storage(&s.contract, &key) else {
                    return Ok(-1i32);
                };
                let value = value.to_vec();
                charge(&mut c, STORAGE_BYTE_GAS * value.len() as u64)?;
                let n = value.len().min(cap as usize);
                write(&mut c, vp, &value[..n])?;
                Ok(value.len() as i32)
            },
        )?;
        linker.func_wrap(
            M,
            "storage_set",
            |mut c: Caller<'_, CallState>, kp: u32, kl: u32, vp: u32, vl: u32| {
                if vl as usize > MAX_STORAGE_VALUE_BYTES {
                    return Err(fault(HostFault::ValueTooLarge));
                }
                charge(
                    &mut c,
                    STORAGE_WRITE_GAS + STORAGE_BYTE_GAS * (u64::from(kl) + u64::from(vl)),
                )?;
                let key = read_key(&mut c, kp, kl)?;
                let value = read(&mut c, vp, vl)?;
                let s = c.data_mut();
                let contract = s.contract;
                s.ledger.set_storage(&contract, &key, &value);
                Ok(())
            },
        )?;
        linker.func_wrap(
            M,
            "storage_remove",
            |mut c: Caller<'_, CallState>, kp: u32, kl: u32| {
                charge(&mut c, STORAGE_WRITE_GAS)?;
                let key = read_key(&mut c, kp, kl)?;
                let s = c.data_mut();
                let contract = s.contract;
                s.ledger.remove_storage(&contract, &key);
                Ok(())
            },
        )?;
        linker.func_wrap(M, "caller", |mut c: Caller<'_, CallState>, ptr: u32| {
            charge(&mut c, HOST_CALL_GAS)?;
            let a = c.data().caller;
            write(&mut c, ptr, &a)
        })?;
        linker.func_wrap(
            M,
            "self_address",
            |mut c: Caller<'_, CallState>, ptr: u32| {
                charge(&mut c, HOST_CALL_GAS)?;
                let a = c.data().contract;
                write(&mut c, ptr, &a)
            },
        )?;
        linker.func_wrap(M, "value", |mut c: Caller<'_, CallState>| {
            charge(&mut c, HOST_CALL_GAS)?;
            Ok(c.data().value)
        })?;
        linker.func_wrap(M, "block_height", |mut c: Caller<'_, CallState>| {
            charge(&mut c, HOST_CALL_GAS)?;
            Ok(c.data().height)
        })?;
        linker.func_wrap(
            M,
            "transfer",
            |mut c: Caller<'_, CallState>, to_ptr: u32, amount: u64| {
                charge(&mut c, TRANSFER_GAS)?;
                let to: Address = read(&mut c, to_ptr, 32)?.try_into().expect("read 32 bytes");
                let s = c.data_mut();
                let contract = s.contract;
                if s.ledger.move_native(&contract, &to, amount).is_err() {
                    return Ok(1u32);
                }
                s.transfers.push((to, amount));
                Ok(0u32)
            },
        )?;
        linker.func_wrap(
            M,
            "emit_event",
            |mut c: Caller<'_, CallState>, ptr: u32, len: u32| {
                if len as usize > MAX_EVENT_BYTES || c.data().events.len() >= MAX_EVENTS {
                    return Err(fault(HostFault::EventLimit));
                }
                charge(&mut c, HOST_CALL_GAS + u64::from(len))?;
                let event = read(&mut c, ptr, len)?;
                c.data_mut().events.push(event);
                Ok(())
            },
        )?;
        Ok(())
    }
}
