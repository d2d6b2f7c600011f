//! WASM contracts end to end on the ledger: the four example contracts
//! deploy and behave, and hostile modules end in typed errors with their
//! gas charged while the chain goes on.

use ballast_core::ledger::examples::{self, counter, decode_u64, escrow, swap, token};
use ballast_core::ledger::execute::{BlockError, Event, Failure, Ledger, Params, Receipt};
use ballast_core::ledger::tx::{Action, Address, MAX_TX_GAS, SignedTransaction, Transaction};
use ballast_core::ledger::wasm::{ContractError, HostFault, TrapKind};
use ballast_core::types::Digest;
use ed25519_dalek::SigningKey;

const PROPOSER: Address = [0xEE; 32];
const GAS: u64 = 1_000_000;

fn params() -> Params {
    Params {
        chain_id: 7,
        reward_per_block: 0,
        unbonding_blocks: 10,
        voting_period_blocks: 10,
        timelock_blocks: 10,
        quorum_percent: 33,
        pass_percent: 50,
        epoch_blocks: 100,
        slash_percent: 10,
    }
}

/// A chain of single-transaction blocks with a few funded users.
struct Harness {
    ledger: Ledger,
    keys: Vec<SigningKey>,
    nonces: Vec<u64>,
    height: u64,
}

impl Harness {
    fn new(users: u8) -> Harness {
        let keys: Vec<SigningKey> = (0..users)
            .map(|i| SigningKey::from_bytes(&Digest::of(&[i, 42]).0))
            .collect();
        let balances: Vec<(Address, u64)> = keys
            .iter()
            .map(|k| (k.verifying_key().to_bytes(), 1_000_000_000))
            .collect();
        Harness {
            ledger: Ledger::genesis(params(), &balances),
            nonces: vec![0; keys.len()],
            keys,
            height: 0,
        }
    }

    fn address(&self, user: usize) -> Address {
        self.keys[user].verifying_key().to_bytes()
    }

    fn sign(&mut self, user: usize, action: Action) -> SignedTransaction {
        let fee = action.min_fee();
        let tx = Transaction {
            chain_id: 7,
            sender: self.address(user),
            nonce: self.nonces[user],
            fee,
            expiry_height: 1_000_000,
            action,
        }
        .sign(&self.keys[user]);
        self.nonces[user] += 1;
        tx
    }

    /// Executes one block; checks supply against every account's holdings.
    fn block(&mut self, txs: &[SignedTransaction]) -> Vec<Receipt> {
        self.height += 1;
        let out = self
            .ledger
            .execute(self.height, &PROPOSER, txs)
            .expect("block executes");
        self.ledger = out.ledger;
        out.receipts
    }

    fn submit(&mut self, user: usize, action: Action) -> Receipt {
        let tx = self.sign(user, action);
        self.block(&[tx]).remove(0)
    }

    fn deploy(&mut self, user: usize, code: &[u8]) -> Address {
        let receipt = self.submit(
            user,
            Action::Deploy {
                code: code.to_vec(),
                gas_limit: GAS,
            },
        );
        assert_eq!(receipt.status, Ok(()), "deploy: {receipt:?}");
        receipt
            .output
            .try_into()
            .expect("a deploy returns the address")
    }

    fn call(&mut self, user: usize, contract: Address, input: Vec<u8>, value: u64) -> Receipt {
        self.submit(
            user,
            Action::Call {
                contract,
                input,
                value,
                gas_limit: GAS,
            },
        )
    }

    fn query(&mut self, contract: Address, input: Vec<u8>) -> u64 {
        let receipt = self.call(0, contract, input, 0);
        assert_eq!(receipt.status, Ok(()));
        decode_u64(&receipt.output).expect("a u64")
    }

    fn balance(&self, address: &Address) -> u64 {
        self.ledger.account(address).unwrap().balance
    }
}

#[test]
fn counter_counts_and_charges_gas() {
    let mut h = Harness::new(1);
    let c = h.deploy(0, examples::COUNTER);
    let first = h.call(0, c, counter::increment(5), 0);
    assert_eq!(first.status, Ok(()));
    assert_eq!(decode_u64(&first.output), Some(5));
    assert!(first.gas_used > 1_000 && first.gas_used < GAS, "{first:?}");
    assert!(first.events.contains(&Event::Contract {
        contract: c,
        data: b"incremented".to_vec()
    }));
    h.call(0, c, counter::increment(2), 0);
    assert_eq!(h.query(c, counter::get()), 7);
    // Unknown method: reverted, state unchanged, the fee still paid.
    let bad = h.call(0, c, vec![9], 0);
    assert_eq!(
        bad.status,
        Err(Failure::Contract(ContractError::Reverted(1)))
    );
    assert_eq!(h.query(c, counter::get()), 7);
}

#[test]
fn token_transfers_conserve_its_supply() {
    let mut h = Harness::new(3);
    let t = h.deploy(0, examples::TOKEN);
    let (a, b, c) = (h.address(0), h.address(1), h.address(2));
    assert_eq!(h.query(t, token::balance_of(&a)), examples::TOKEN_SUPPLY);
    assert_eq!(h.call(0, t, token::transfer(&b, 300), 0).status, Ok(()));
    assert_eq!(h.call(1, t, token::transfer(&c, 100), 0).status, Ok(()));
    let overdraw = h.call(2, t, token::transfer(&a, 101), 0);
    assert_eq!(
        overdraw.status,
        Err(Failure::Contract(ContractError::Reverted(2)))
    );
    let balances = [a, b, c].map(|x| h.query(t, token::balance_of(&x)));
    assert_eq!(balances, [examples::TOKEN_SUPPLY - 300, 200, 100]);
    assert_eq!(
        balances.iter().sum::<u64>(),
        h.query(t, token::total_supply())
    );
}

#[test]
fn escrow_pays_the_right_party_once() {
    let mut h = Harness::new(4);
    let e = h.deploy(0, examples::ESCROW);
    let (buyer, seller, arbiter) = (h.address(1), h.address(2), h.address(3));
    let before = (h.balance(&buyer), h.balance(&seller));
    let opened = h.call(1, e, escrow::open(&seller, &arbiter), 5_000);
    assert_eq!(opened.status, Ok(()));
    let id = decode_u64(&opened.output).unwrap();
    assert_eq!(h.balance(&e), 5_000);
    // The seller cannot release to itself; the buyer can.
    let stolen = h.call(2, e, escrow::release(id), 0);
    assert_eq!(
        stolen.status,
        Err(Failure::Contract(ContractError::Reverted(3)))
    );
    let released = h.call(1, e, escrow::release(id), 0);
    assert_eq!(released.status, Ok(()));
    assert!(released.events.contains(&Event::Transfer {
        from: e,
        to: seller,
        amount: 5_000
    }));
    let fees_paid = |h: &Harness, user: usize| h.nonces[user] * (GAS / 1_000);
    assert_eq!(h.balance(&seller), before.1 + 5_000 - fees_paid(&h, 2));
    assert_eq!(h.balance(&buyer), before.0 - 5_000 - fees_paid(&h, 1));
    // Settled once: a refund after the release is refused.
    let again = h.call(3, e, escrow::refund(id), 0);
    assert_eq!(
        again.status,
        Err(Failure::Contract(ContractError::Reverted(6)))
    );
    // A second escrow refunded by the arbiter.
    let id2 = decode_u64(&h.call(1, e, escrow::open(&seller, &arbiter), 700).output).unwrap();
    assert_eq!(id2, id + 1);
    assert_eq!(h.call(3, e, escrow::refund(id2), 0).status, Ok(()));
    assert_eq!(h.balance(&e), 0);
}

#[test]
fn swap_pool_keeps_its_product_and_its_coins() {
    let mut h = Harness::new(3);
    let p = h.deploy(0, examples::SWAP);
    let (lp, trader) = (h.address(0), h.address(1));
    let added = h.call(0, p, swap::add_liquidity(4_000_000), 1_000_000);
    assert_eq!(added.status, Ok(()));
    assert_eq!(decode_u64(&added.output), Some(2_000_000));
    let reserves = |h: &mut Harness| {
        let out = h.call(0, p, swap::reserves(), 0).output;
        (
            decode_u64(&out[..8]).unwrap(),
            decode_u64(&out[8..16]).unwrap(),
        )
    };
    let mut k = {
        let (n, t) = reserves(&mut h);
        u128::from(n) * u128::from(t)
    };
    // Native in, tokens out: the 0.3% fee keeps the product growing.
    let bought = h.call(1, p, swap::native_for_token(0), 10_000);
    assert_eq!(bought.status, Ok(()));
    let tokens = decode_u64(&bought.output).unwrap();
    assert!(tokens > 39_000 && tokens < 40_000, "{tokens}");
    assert_eq!(h.query(p, swap::balance_of(&trader)), tokens);
    for _ in 0..3 {
        let (n, t) = reserves(&mut h);
        let k2 = u128::from(n) * u128::from(t);
        assert!(k2 >= k);
        k = k2;
        assert_eq!(h.balance(&p), n, "the pool's coins are its native reserve");
        let sold = h.call(1, p, swap::token_for_native(tokens / 4, 0), 0);
        assert_eq!(sold.status, Ok(()));
    }
    // A slippage bound that cannot be met reverts and changes nothing.
    let before = reserves(&mut h);
    let greedy = h.call(1, p, swap::native_for_token(u64::MAX), 10_000);
    assert_eq!(
        greedy.status,
        Err(Failure::Contract(ContractError::Reverted(6)))
    );
    assert_eq!(reserves(&mut h), before);
    // The provider takes everything out.
    assert_eq!(
        h.call(0, p, swap::remove_liquidity(2_000_000), 0).status,
        Ok(())
    );
    assert_eq!(reserves(&mut h), (0, 0));
    assert_eq!(h.balance(&p), 0);
    assert!(h.balance(&lp) > 0);
}

/// Deploys `wat` and calls it; returns the call's receipt.
fn run_hostile(h: &mut Harness, wat: &str, gas_limit: u64) -> Receipt {
    let code = wat::parse_str(wat).expect("valid text");
    let deployed = h.submit(
        0,
        Action::Deploy {
            code,
            gas_limit: GAS,
        },
    );
    let Ok(()) = deployed.status else {
        return deployed;
    };
    let contract: Address = deployed.output.try_into().unwrap();
    h.submit(
        0,
        Action::Call {
            contract,
            input: vec![],
            value: 0,
            gas_limit,
        },
    )
}

fn contract_error(receipt: &Receipt) -> ContractError {
    match &receipt.status {
        Err(Failure::Contract(e)) => e.clone(),
        other => panic!("expected a contract error, got {other:?}"),
    }
}

/// How deep a call may recurse is decided by the WASM-level stack meter,
/// to the exact frame, not by the machine's native stack: the deepest
/// recursion the meter allows succeeds, one frame more is stopped.
#[test]
fn the_stack_meter_not_the_machine_decides_how_deep_a_call_goes() {
    use ballast_core::ledger::stack_meter::{FRAME_UNITS, MAX_STACK_UNITS};
    let recurse = |depth: u32| {
        format!(
            r#"(module (memory (export "memory") 1)
            (func $r (param i32) (result i32)
                (if (result i32) (i32.eqz (local.get 0))
                    (then (i32.const 0))
                    (else (call $r (i32.sub (local.get 0) (i32.const 1))))))
            (func (export "call") (result i32) (call $r (i32.const {depth}))))"#
        )
    };
    // `$r`: one local, at most two operands; `call`: one operand.
    let (frame_r, frame_call) = (FRAME_UNITS + 3, FRAME_UNITS + 1);
    // `$r(d)` runs d + 1 frames deep.
    let deepest = (MAX_STACK_UNITS - frame_call) / frame_r - 1;
    let mut h = Harness::new(1);
    let r = run_hostile(&mut h, &recurse(deepest), MAX_TX_GAS);
    assert_eq!(r.status, Ok(()), "{deepest} frames deep");
    assert!(r.gas_used < MAX_TX_GAS);
    let r = run_hostile(&mut h, &recurse(deepest + 1), MAX_TX_GAS);
    assert_eq!(
        contract_error(&r),
        ContractError::Trapped(TrapKind::StackOverflow)
    );
    assert_eq!(r.gas_used, MAX_TX_GAS);
}

#[test]
fn hostile_modules_end_in_typed_errors_with_gas_charged() {
    let mut h = Harness::new(1);
    let a = h.address(0);
    let endless = r#"(module (memory (export "memory") 1)
        (func (export "call") (result i32) (loop $l (br $l)) (i32.const 0)))"#;
    let r = run_hostile(&mut h, endless, 200_000);
    assert_eq!(contract_error(&r), ContractError::OutOfGas);
    assert_eq!(r.gas_used, 200_000, "all gas is charged");
    assert_eq!(r.fee_paid, 200);

    let grow_bomb = r#"(module (memory (export "memory") 1)
        (func (export "call") (result i32)
          (loop $l (drop (memory.grow (i32.const 1))) (br $l)) (i32.const 0)))"#;
    let r = run_hostile(&mut h, grow_bomb, 500_000);
    assert_eq!(contract_error(&r), ContractError::OutOfGas);

    let huge_memory = r#"(module (memory (export "memory") 1000)
        (func (export "call") (result i32) (i32.const 0)))"#;
    let r = run_hostile(&mut h, huge_memory, GAS);
    assert_eq!(
        contract_error(&r),
        ContractError::MemoryTooLarge { pages: 1000 }
    );

    let recursion = r#"(module (memory (export "memory") 1)
        (func $f (param i64) (result i64) (call $f (i64.add (local.get 0) (i64.const 1))))
        (func (export "call") (result i32) (drop (call $f (i64.const 0))) (i32.const 0)))"#;
    let r = run_hostile(&mut h, recursion, MAX_TX_GAS);
    assert_eq!(
        contract_error(&r),
        ContractError::Trapped(TrapKind::StackOverflow)
    );
    assert_eq!(r.gas_used, MAX_TX_GAS);

    let no_call = r#"(module (memory (export "memory") 1)
        (func (export "run") (result i32) (i32.const 0)))"#;
    let r = run_hostile(&mut h, no_call, GAS);
    assert_eq!(contract_error(&r), ContractError::MissingExport("call"));

    let stranger = r#"(module (import "wasi" "fd_write" (func (param i32)))
        (memory (export "memory") 1) (func (export "call") (result i32) (i32.const 0)))"#;
    let r = run_hostile(&mut h, stranger, GAS);
    assert!(matches!(
        contract_error(&r),
        ContractError::UnknownImport(_)
    ));

    let wild_pointer = r#"(module (import "ballast" "caller" (func $caller (param i32)))
        (memory (export "memory") 1)
        (func (export "call") (result i32) (call $caller (i32.const 65530)) (i32.const 0)))"#;
    let r = run_hostile(&mut h, wild_pointer, GAS);
    assert_eq!(
        contract_error(&r),
        ContractError::Host(HostFault::BadPointer)
    );

    let big_value = r#"(module
        (import "ballast" "storage_set" (func $set (param i32 i32 i32 i32)))
        (memory (export "memory") 1)
        (func (export "call") (result i32)
          (call $set (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 60000)) (i32.const 0)))"#;
    let r = run_hostile(&mut h, big_value, GAS);
    assert_eq!(
        contract_error(&r),
        ContractError::Host(HostFault::ValueTooLarge)
    );

    let garbage = h.submit(
        0,
        Action::Deploy {
            code: b"\0asm\x01\0\0\0garbage".to_vec(),
            gas_limit: GAS,
        },
    );
    assert!(matches!(
        contract_error(&garbage),
        ContractError::InvalidModule(_)
    ));

    let panics = h.deploy(0, examples::COUNTER);
    let r = h.call(0, panics, counter::increment(u64::MAX), 0);
    assert_eq!(r.status, Ok(()));
    let overflow = h.call(0, panics, counter::increment(1), 0);
    assert_eq!(contract_error(&overflow), ContractError::Reverted(5));

    // After all that, the chain goes on: a plain transfer still executes,
    // and every fee was paid.
    let r = h.submit(
        0,
        Action::Transfer {
            to: [1; 32],
            amount: 1,
        },
    );
    assert_eq!(r.status, Ok(()));
    assert_eq!(h.balance(&[1; 32]), 1);
    let fees = h.balance(&PROPOSER);
    assert_eq!(h.balance(&a) + fees + 1, 1_000_000_000);
}

#[test]
fn gas_is_bounded_by_the_fee_and_the_limits() {
    let mut h = Harness::new(1);
    let c = h.deploy(0, examples::COUNTER);
    let cheap = Transaction {
        chain_id: 7,
        sender: h.address(0),
        nonce: h.nonces[0],
        fee: 999,
        expiry_height: 1_000_000,
        action: Action::Call {
            contract: c,
            input: counter::increment(1),
            value: 0,
            gas_limit: GAS,
        },
    }
    .sign(&h.keys[0]);
    assert_eq!(
        h.ledger.execute(9, &PROPOSER, &[cheap]).unwrap_err(),
        BlockError::FeeBelowGas {
            index: 0,
            fee: 999,
            min_fee: 1_000
        }
    );
    let greedy = h.sign(
        0,
        Action::Call {
            contract: c,
            input: counter::increment(1),
            value: 0,
            gas_limit: MAX_TX_GAS + 1,
        },
    );
    assert!(matches!(
        h.ledger.execute(9, &PROPOSER, &[greedy]),
        Err(BlockError::GasLimitTooHigh { .. })
    ));
    h.nonces[0] -= 1; // the refused transaction never used its nonce
    // A call with too little gas fails with OutOfGas and costs its limit.
    let starved = h.submit(
        0,
        Action::Call {
            contract: c,
            input: counter::increment(1),
            value: 0,
            gas_limit: 100,
        },
    );
    assert_eq!(contract_error(&starved), ContractError::OutOfGas);
    assert_eq!(starved.gas_used, 100);
}

#[test]
fn contract_blocks_reexecute_to_the_same_root() {
    let mut h = Harness::new(2);
    let t = h.deploy(0, examples::TOKEN);
    let b = h.address(1);
    let txs: Vec<SignedTransaction> = (0..20)
        .map(|i| {
            let action = Action::Call {
                contract: t,
                input: token::transfer(&b, i),
                value: 0,
                gas_limit: GAS,
            };
            h.sign(0, action)
        })
        .collect();
    let first = h.ledger.execute(5, &PROPOSER, &txs).unwrap();
    // A fresh VM (empty module cache) reaches the same root and receipts.
    let mut cold = h.ledger.clone();
    cold.vm = Default::default();
    let second = cold.execute(5, &PROPOSER, &txs).unwrap();
    assert_eq!(first.state_root, second.state_root);
    assert_eq!(first.receipts, second.receipts);
    assert!(first.receipts.iter().all(|r| r.status.is_ok()));
}
