//! Block execution: transactions in block order, applied to the state tree,
//! into receipts and a new state root. Pure and deterministic, so every
//! validator that executes a block reaches the same root.
//!
//! Rules, in order, for each transaction:
//! 1. it must be payable: right chain, not expired, the sender's next nonce,
//!    a valid signature (checked for the whole block in one batch), and a
//!    balance that covers the fee. A block with an unpayable transaction is
//!    invalid ([`BlockError`]): a leader only includes payable ones.
//! 2. the fee goes to the block's proposer and the nonce advances, whatever
//!    the action does;
//! 3. the action runs; if it fails, its changes are dropped and the receipt
//!    says why (the fee stays paid).
//!
//! Supply: only the per-block reward (minted to the proposer) changes the
//! total; it is tracked in the state and checked against every change.
//!
//! Actions: transfers, staking (stake, unstake with an unbonding period,
//! delegate, undelegate), governance of the parameters
//! ([`super::governance`]) and WASM contracts ([`super::wasm`]): deploy
//! stores the code once per code hash and runs `init`; a call moves its
//! value to the contract and runs `call` on a copy of the state that is kept
//! only if the call succeeds.

pub use super::outcome::{BlockError, Event, Failure, Receipt};
use super::tx::{
    Action, Address, MAX_BLOCK_GAS, MAX_TX_GAS, SignatureError, SignedTransaction, Transaction,
    verify_batch,
};
use super::wasm::{CallState, ContractError, Vm};
use crate::codec::DecodeError;
use crate::state::smt::Tree;
use crate::types::{Digest, Height};

pub use super::tx::NATIVE_GAS;

/// Gas per byte of deployed code (pays for validating and compiling it).
pub const DEPLOY_BYTE_GAS: u64 = 20;

pub use super::records::{
    Account, MAX_UNBONDINGS, Params, account_key, contract_address, params_key,
};
use super::records::{bonded_key, code_key, contract_key, delegation_key, storage_key, supply_key};

/// The ledger's state: a tree, read and written through typed records.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub params: Params,
    pub tree: Tree,
    /// Runs contracts; shared by every state derived from this one.
    pub vm: Vm,
}

/// A block being built one transaction at a time (see
/// [`Ledger::start_block`]).
pub(crate) struct BlockInProgress {
    pub(super) ledger: Ledger,
    height: Height,
    proposer: Address,
    pub(super) receipts: Vec<Receipt>,
    block_events: Vec<Event>,
    gas: u64,
}

impl BlockInProgress {
    /// Appends `tx` (its signature already checked) if it can be included
    /// now: within the block's gas, payable, and executable. A transaction
    /// that cannot leaves no trace. Returns whether it was included.
    pub(crate) fn try_push(&mut self, tx: &SignedTransaction) -> bool {
        let gas = self.gas + tx.tx.action.gas_limit();
        if gas > MAX_BLOCK_GAS || self.ledger.payable(tx, self.height).is_err() {
            return false;
        }
        let mut next = self.ledger.clone();
        match next.apply(tx, self.height, &self.proposer) {
            Ok(receipt) => {
                self.ledger = next;
                self.receipts.push(receipt);
                self.gas = gas;
                true
            }
            Err(_) => false,
        }
    }

    /// Ends the block: the reward, the supply, the state root.
    pub(crate) fn finish(self) -> Result<Executed, BlockError> {
        let BlockInProgress {
            mut ledger,
            proposer,
            receipts,
            block_events,
            ..
        } = self;
        // The block reward: the only new money.
        let reward = ledger.params.reward_per_block;
        let mut account = ledger
            .account(&proposer)
            .map_err(BlockError::CorruptState)?;
        account.balance = account.balance.saturating_add(reward);
        ledger.put_account(&proposer, &account);
        // Slashing may have burned some of it during the block.
        let supply = ledger.supply().saturating_add(reward);
        ledger.tree = ledger.tree.insert(supply_key(), &supply.to_le_bytes());
        let state_root = ledger.tree.root();
        let receipts_root = super::receipts::receipts_root(&receipts);
        Ok(Executed {
            ledger,
            receipts,
            block_events,
            state_root,
            receipts_root,
        })
    }
}

/// A block's outcome.
#[derive(Clone, Debug)]
pub struct Executed {
    pub ledger: Ledger,
    pub receipts: Vec<Receipt>,
    /// What the block did outside its transactions (governance).
    pub block_events: Vec<Event>,
    pub state_root: Digest,
    /// See [`super::receipts`].
    pub receipts_root: Digest,
}

impl Ledger {
    /// The genesis state: `balances` credited, supply set to their sum.
    pub fn genesis(params: Params, balances: &[(Address, u64)]) -> Ledger {
        let mut tree = Tree::new();
        let mut supply: u64 = 0;
        for (address, balance) in balances {
            supply = supply
                .checked_add(*balance)
                .expect("genesis supply fits u64");
            let account = Account {
                balance: *balance,
                ..Account::default()
            };
            tree = tree.insert(account_key(address), &account.encode());
        }
        tree = tree.insert(supply_key(), &supply.to_le_bytes());
        tree = tree.insert(params_key(), &params.encode());
        Ledger {
            params,
            tree,
            vm: Vm::new(),
        }
    }

    /// The ledger whose whole state is `tree` (as stored on disk): the
    /// parameters are read back from it; `vm` compiles its contracts (one
    /// VM is shared by every state of a node).
    pub fn from_tree(tree: Tree, vm: Vm) -> Result<Ledger, DecodeError> {
        let params = Params::decode(
            tree.get(&params_key())
                .ok_or(DecodeError::Invalid("the state holds no parameters"))?,
        )?;
        Ok(Ledger { params, tree, vm })
    }

    /// The parameters as the state records them (equal to `params`).
    pub fn stored_params(&self) -> Result<Params, DecodeError> {
        Params::decode(self.tree.get(&params_key()).unwrap_or_default())
    }

    pub(super) fn set_params(&mut self, params: Params) {
        self.tree = self.tree.insert(params_key(), &params.encode());
        self.params = params;
    }

    /// All stake bonded to validators, own and delegated.
    pub fn bonded(&self) -> u64 {
        self.tree
            .get(&bonded_key())
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub(super) fn add_bonded(&mut self, amount: u64, bond: bool) {
        let bonded = if bond {
            self.bonded().saturating_add(amount)
        } else {
            self.bonded().saturating_sub(amount)
        };
        self.tree = self.tree.insert(bonded_key(), &bonded.to_le_bytes());
    }

    pub fn account(&self, address: &Address) -> Result<Account, DecodeError> {
        match self.tree.get(&account_key(address)) {
            None => Ok(Account::default()),
            Some(bytes) => Account::decode(bytes),
        }
    }

    pub fn supply(&self) -> u64 {
        let bytes = self
            .tree
            .get(&supply_key())
            .expect("supply is set at genesis");
        u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
    }

    pub fn delegation(&self, delegator: &Address, validator: &Address) -> u64 {
        self.tree
            .get(&delegation_key(delegator, validator))
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// The code hash of the contract at `address`, if there is one.
    pub fn contract_code_hash(&self, address: &Address) -> Option<Digest> {
        let bytes = self.tree.get(&contract_key(address))?;
        Some(Digest(bytes.try_into().ok()?))
    }

    /// A contract's storage entry under `key`.
    pub fn storage(&self, contract: &Address, key: &[u8]) -> Option<&[u8]> {
        self.tree.get(&storage_key(contract, key))
    }

    pub(super) fn set_storage(&mut self, contract: &Address, key: &[u8], value: &[u8]) {
        self.tree = self.tree.insert(storage_key(contract, key), value);
    }

    pub(super) fn remove_storage(&mut self, contract: &Address, key: &[u8]) {
        self.tree = self.tree.remove(&storage_key(contract, key));
    }

    /// Moves `amount` native coins from `from`'s balance to `to`'s.
    pub(super) fn move_native(
        &mut self,
        from: &Address,
        to: &Address,
        amount: u64,
    ) -> Result<(), Failure> {
        let mut sender = self.account(from).unwrap_or_default();
        debit(&mut sender.balance, amount)?;
        self.put_account(from, &sender);
        let mut receiver = self.account(to).unwrap_or_default();
        receiver.balance = receiver
            .balance
            .checked_add(amount)
            .ok_or(Failure::Overflow)?;
        self.put_account(to, &receiver);
        Ok(())
    }

    pub(super) fn set_supply(&mut self, supply: u64) {
        self.tree = self.tree.insert(supply_key(), &supply.to_le_bytes());
    }

    pub(super) fn put_account(&mut self, address: &Address, account: &Account) {
        self.tree = self.tree.insert(account_key(address), &account.encode());
    }

    fn put_delegation(&mut self, delegator: &Address, validator: &Address, amount: u64) {
        let key = delegation_key(delegator, validator);
        self.tree = if amount == 0 {
            self.tree.remove(&key)
        } else {
            self.tree.insert(key, &amount.to_le_bytes())
        };
    }

    /// Whether `tx` could be included at `height` now (signature aside):
    /// what a leader checks when it builds a block.
    pub fn payable(&self, tx: &SignedTransaction, height: Height) -> Result<(), BlockError> {
        let t = &tx.tx;
        if t.chain_id != self.params.chain_id {
            return Err(BlockError::WrongChain {
                index: 0,
                got: t.chain_id,
            });
        }
        if t.expiry_height < height {
            return Err(BlockError::Expired {
                index: 0,
                expiry_height: t.expiry_height,
            });
        }
        let account = self.account(&t.sender).map_err(BlockError::CorruptState)?;
        if t.nonce != account.nonce {
            return Err(BlockError::BadNonce {
                index: 0,
                expected: account.nonce,
                got: t.nonce,
            });
        }
        if account.balance < t.fee {
            return Err(BlockError::CannotPayFee {
                index: 0,
                fee: t.fee,
                balance: account.balance,
            });
        }
        let gas_limit = t.action.gas_limit();
        if gas_limit > MAX_TX_GAS {
            return Err(BlockError::GasLimitTooHigh {
                index: 0,
                gas_limit,
            });
        }
        if t.fee < t.action.min_fee() {
            return Err(BlockError::FeeBelowGas {
                index: 0,
                fee: t.fee,
                min_fee: t.action.min_fee(),
            });
        }
        Ok(())
    }

    /// Executes a block proposed by `proposer` at `height`.
    pub fn execute(
        &self,
        height: Height,
        proposer: &Address,
        txs: &[SignedTransaction],
    ) -> Result<Executed, BlockError> {
        self.execute_with(height, proposer, txs, verify_batch)
    }

    /// [`Ledger::execute`], skipping the signature check of transactions
    /// `verified` vouches for (a node's mempool verified them on admission;
    /// checking them again was half of a validator's signature work).
    /// Per-transaction results of a batch check do not depend on the other
    /// transactions in it, so the outcome is exactly `execute`'s.
    pub fn execute_known(
        &self,
        height: Height,
        proposer: &Address,
        txs: &[SignedTransaction],
        verified: &dyn Fn(&SignedTransaction) -> bool,
    ) -> Result<Executed, BlockError> {
        self.execute_with(height, proposer, txs, |txs| {
            checked_signatures(txs, verified)
        })
    }

    /// Executes after the gas check, with `check_signatures` deciding each
    /// transaction's signature.
    fn execute_with(
        &self,
        height: Height,
        proposer: &Address,
        txs: &[SignedTransaction],
        check_signatures: impl FnOnce(&[SignedTransaction]) -> Vec<Result<(), SignatureError>>,
    ) -> Result<Executed, BlockError> {
        let gas: u64 = txs.iter().map(|tx| tx.tx.action.gas_limit()).sum();
        if gas > MAX_BLOCK_GAS {
            return Err(BlockError::BlockGasExceeded { gas });
        }
        let signatures = check_signatures(txs);
        debug_assert_eq!(signatures.len(), txs.len());
        let mut block = self.start_block(height, proposer);
        block.receipts.reserve(txs.len());
        for (index, (tx, signature)) in txs.iter().zip(signatures).enumerate() {
            signature.map_err(|error| BlockError::Signature { index, error })?;
            block
                .ledger
                .payable(tx, height)
                .map_err(|e| with_index(e, index))?;
            let receipt = block.ledger.apply(tx, height, proposer)?;
            block.receipts.push(receipt);
        }
        block.finish()
    }

    /// Begins a block at `height`: the block-level rules that run before
    /// its transactions (governance, epoch change). [`Ledger::execute`] and
    /// the block builder share it, so what a leader builds is exactly what
    /// validators re-execute.
    pub(crate) fn start_block(&self, height: Height, proposer: &Address) -> BlockInProgress {
        let mut ledger = self.clone();
        let mut block_events = Vec::new();
        ledger.govern(height, &mut block_events);
        ledger.maybe_start_epoch(height, &mut block_events);
        BlockInProgress {
            ledger,
            height,
            proposer: *proposer,
            receipts: Vec::new(),
            block_events,
            gas: 0,
        }
    }

    /// Charges the fee, advances the nonce, runs the action.
    pub(super) fn apply(
        &mut self,
        tx: &SignedTransaction,
        height: Height,
        proposer: &Address,
    ) -> Result<Receipt, BlockError> {
        let t = &tx.tx;
        let mut sender = self.account(&t.sender).map_err(BlockError::CorruptState)?;
        release_unbonded(&mut sender, height);
        sender.balance -= t.fee; // payable() checked it
        sender.nonce += 1;
        self.put_account(&t.sender, &sender);
        let mut fee_to = self.account(proposer).map_err(BlockError::CorruptState)?;
        fee_to.balance = fee_to.balance.saturating_add(t.fee);
        self.put_account(proposer, &fee_to);
        // The action runs on a copy: a failure leaves no trace but the fee.
        let mut attempt = self.clone();
        let mut outcome = Outcome {
            gas_used: NATIVE_GAS,
            events: Vec::new(),
            output: Vec::new(),
        };
        let status = attempt.action(t, height, &mut outcome);
        if status.is_ok() {
            *self = attempt;
        } else {
            outcome.events.clear();
            outcome.output.clear();
        }
        debug_assert!(outcome.gas_used <= t.action.gas_limit().max(NATIVE_GAS));
        Ok(Receipt {
            tx: tx.hash(),
            status,
            gas_used: outcome.gas_used,
            fee_paid: t.fee,
            events: outcome.events,
            output: outcome.output,
        })
    }

    fn action(
        &mut self,
        t: &Transaction,
        height: Height,
        outcome: &mut Outcome,
    ) -> Result<(), Failure> {
        let from = &t.sender;
        let load = |l: &Ledger, a: &Address| l.account(a).unwrap_or_default();
        match &t.action {
            Action::Transfer { to, amount } => {
                let mut sender = load(self, from);
                debit(&mut sender.balance, *amount)?;
                self.put_account(from, &sender);
                let mut receiver = load(self, to);
                receiver.balance = receiver
                    .balance
                    .checked_add(*amount)
                    .ok_or(Failure::Overflow)?;
                self.put_account(to, &receiver);
                outcome.events.push(Event::Transfer {
                    from: *from,
                    to: *to,
                    amount: *amount,
                });
            }
            Action::Stake { amount } => {
                let mut account = load(self, from);
                nonzero(*amount)?;
                debit(&mut account.balance, *amount)?;
                account.staked = account
                    .staked
                    .checked_add(*amount)
                    .ok_or(Failure::Overflow)?;
                self.put_account(from, &account);
                self.add_bonded(*amount, true);
                self.add_power(from, *amount)?;
                outcome.events.push(Event::Staked {
                    validator: *from,
                    by: *from,
                    amount: *amount,
                });
            }
            Action::Unstake { amount } => {
                let mut account = load(self, from);
                nonzero(*amount)?;
                if account.staked < *amount {
                    return Err(Failure::InsufficientStake {
                        needed: *amount,
                        available: account.staked,
                    });
                }
                account.staked -= amount;
                let release_height = height + self.params.unbonding_blocks;
                unbond(&mut account, release_height, *amount)?;
                self.put_account(from, &account);
                self.add_bonded(*amount, false);
                self.remove_power(from, *amount);
                outcome.events.push(Event::Unbonding {
                    validator: *from,
                    by: *from,
                    amount: *amount,
                    release_height,
                });
            }
            Action::Delegate { validator, amount } => {
                let mut account = load(self, from);
                nonzero(*amount)?;
                debit(&mut account.balance, *amount)?;
                account.delegated = account
                    .delegated
                    .checked_add(*amount)
                    .ok_or(Failure::Overflow)?;
                self.put_account(from, &account);
                let delegated = self.delegation(from, validator);
                let total = delegated.checked_add(*amount).ok_or(Failure::Overflow)?;
                self.put_delegation(from, validator, total);
                self.add_bonded(*amount, true);
                self.add_power(validator, *amount)?;
                outcome.events.push(Event::Staked {
                    validator: *validator,
                    by: *from,
                    amount: *amount,
                });
            }
            Action::Undelegate { validator, amount } => {
                nonzero(*amount)?;
                let delegated = self.delegation(from, validator);
                if delegated < *amount {
                    return Err(Failure::InsufficientStake {
                        needed: *amount,
                        available: delegated,
                    });
                }
                self.put_delegation(from, validator, delegated - amount);
                let mut account = load(self, from);
                account.delegated -= amount;
                // A slashed validator's delegators lose its share too.
                let burned = self.burn_slashed_delegation(validator, *amount);
                if burned > 0 {
                    outcome.events.push(Event::DelegationSlashed {
                        validator: *validator,
                        by: *from,
                        burned,
                    });
                }
                let release_height = height + self.params.unbonding_blocks;
                unbond(&mut account, release_height, amount - burned)?;
                self.put_account(from, &account);
                self.add_bonded(*amount, false);
                self.remove_power(validator, *amount);
                outcome.events.push(Event::Unbonding {
                    validator: *validator,
                    by: *from,
                    amount: amount - burned,
                    release_height,
                });
            }
            Action::Deploy { code, gas_limit } => {
                self.deploy(from, t.nonce, code, *gas_limit, height, outcome)?;
            }
            Action::Call {
                contract,
                input,
                value,
                gas_limit,
            } => {
                let call = Call {
                    caller: *from,
                    contract: *contract,
                    input: input.clone(),
                    value: *value,
                    height,
                };
                self.call(call, *gas_limit, outcome)?;
            }
            Action::Evidence { evidence } => self.slash(evidence, &mut outcome.events)?,
            Action::GovernancePropose { parameter, value } => {
                self.propose_parameter(from, *parameter, *value, height, &mut outcome.events)?;
            }
            Action::GovernanceVote { proposal, approve } => {
                self.vote(from, *proposal, *approve, height, &mut outcome.events)?;
            }
            Action::RegisterVoteKey { key, proof } => self.register_vote_key(from, key, proof)?,
        }
        Ok(())
    }
}

/// What an action produced besides its status.
struct Outcome {
    gas_used: u64,
    events: Vec<Event>,
    output: Vec<u8>,
}

/// A contract call's context.
struct Call {
    caller: Address,
    contract: Address,
    input: Vec<u8>,
    value: u64,
    height: Height,
}

impl Ledger {
    fn deploy(
        &mut self,
        deployer: &Address,
        nonce: u64,
        code: &[u8],
        gas_limit: u64,
        height: Height,
        outcome: &mut Outcome,
    ) -> Result<(), Failure> {
        let code_gas = DEPLOY_BYTE_GAS.saturating_mul(code.len() as u64);
        outcome.gas_used = code_gas.min(gas_limit);
        if code_gas > gas_limit {
            return Err(ContractError::OutOfGas.into());
        }
        let code_hash = Digest::of(code);
        let compiled = self.vm.compile(code_hash, code)?;
        let address = contract_address(deployer, nonce);
        debug_assert!(
            self.contract_code_hash(&address).is_none(),
            "nonces are unique"
        );
        if self.tree.get(&code_key(&code_hash)).is_none() {
            self.tree = self.tree.insert(code_key(&code_hash), code);
        }
        self.tree = self.tree.insert(contract_key(&address), &code_hash.0);
        outcome
            .events
            .push(Event::ContractDeployed { address, code_hash });
        outcome.output = address.to_vec();
        if compiled.has_init {
            let call = Call {
                caller: *deployer,
                contract: address,
                input: Vec::new(),
                value: 0,
                height,
            };
            let gas_used = self.run(&compiled, call, "init", gas_limit - code_gas, outcome)?;
            outcome.gas_used = code_gas + gas_used;
            outcome.output = address.to_vec();
        }
        Ok(())
    }

    fn call(&mut self, call: Call, gas_limit: u64, outcome: &mut Outcome) -> Result<(), Failure> {
        outcome.gas_used = gas_limit.min(NATIVE_GAS);
        let code_hash = self
            .contract_code_hash(&call.contract)
            .ok_or(ContractError::NoContract)?;
        // Borrowed, not copied: on a cache hit (every call after the first)
        // the code is never read.
        let code = self
            .tree
            .get(&code_key(&code_hash))
            .expect("a contract's code is stored with it");
        let compiled = self.vm.compile(code_hash, code)?;
        self.move_native(&call.caller, &call.contract, call.value)?;
        let gas_used = self.run(&compiled, call, "call", gas_limit, outcome)?;
        outcome.gas_used = gas_used;
        Ok(())
    }

    /// Runs a contract entry on a copy of this state and keeps the copy's
    /// changes if it succeeds. Returns the gas used.
    fn run(
        &mut self,
        compiled: &super::wasm::Compiled,
        call: Call,
        entry: &str,
        gas_limit: u64,
        outcome: &mut Outcome,
    ) -> Result<u64, Failure> {
        let contract = call.contract;
        let state = CallState::new(
            self.clone(),
            contract,
            call.caller,
            call.value,
            call.height,
            call.input,
        );
        let (state, result, gas_used) = self.vm.run(compiled, state, entry, gas_limit);
        outcome.gas_used = gas_used;
        result?;
        *self = state.ledger;
        for data in state.events {
            outcome.events.push(Event::Contract { contract, data });
        }
        for (to, amount) in state.transfers {
            outcome.events.push(Event::Transfer {
                from: contract,
                to,
                amount,
            });
        }
        outcome.output = state.output;
        Ok(gas_used)
    }
}

/// Each transaction's signature check, in one batch for those `verified`
/// does not vouch for.
pub(super) fn checked_signatures(
    txs: &[SignedTransaction],
    verified: &dyn Fn(&SignedTransaction) -> bool,
) -> Vec<Result<(), SignatureError>> {
    let unknown: Vec<usize> = (0..txs.len()).filter(|&i| !verified(&txs[i])).collect();
    if unknown.len() == txs.len() {
        return verify_batch(txs);
    }
    let subset: Vec<SignedTransaction> = unknown.iter().map(|&i| txs[i].clone()).collect();
    let mut signatures = vec![Ok(()); txs.len()];
    for (i, checked) in unknown.into_iter().zip(verify_batch(&subset)) {
        signatures[i] = checked;
    }
    signatures
}

pub(super) fn with_index(error: BlockError, index: usize) -> BlockError {
    match error {
        BlockError::WrongChain { got, .. } => BlockError::WrongChain { index, got },
        BlockError::Expired { expiry_height, .. } => BlockError::Expired {
            index,
            expiry_height,
        },
        BlockError::BadNonce { expected, got, .. } => BlockError::BadNonce {
            index,
            expected,
            got,
        },
        BlockError::CannotPayFee { fee, balance, .. } => BlockError::CannotPayFee {
            index,
            fee,
            balance,
        },
        BlockError::GasLimitTooHigh { gas_limit, .. } => {
            BlockError::GasLimitTooHigh { index, gas_limit }
        }
        BlockError::FeeBelowGas { fee, min_fee, .. } => BlockError::FeeBelowGas {
            index,
            fee,
            min_fee,
        },
        other => other,
    }
}

fn debit(balance: &mut u64, amount: u64) -> Result<(), Failure> {
    if *balance < amount {
        return Err(Failure::InsufficientBalance {
            needed: amount,
            available: *balance,
        });
    }
    *balance -= amount;
    Ok(())
}

fn nonzero(amount: u64) -> Result<(), Failure> {
    if amount == 0 {
        return Err(Failure::ZeroAmount);
    }
    Ok(())
}

fn unbond(account: &mut Account, release_height: Height, amount: u64) -> Result<(), Failure> {
    if account.unbonding.len() >= MAX_UNBONDINGS {
        return Err(Failure::TooManyUnbondings);
    }
    account.unbonding.push((release_height, amount));
    Ok(())
}

/// Unbonded amounts whose release height has come return to the balance
/// when the account next sends a transaction.
fn release_unbonded(account: &mut Account, height: Height) {
    let (released, locked): (Vec<_>, Vec<_>) = account
        .unbonding
        .iter()
        .partition(|(release, _)| *release <= height);
    account.unbonding = locked;
    for (_, amount) in released {
        account.balance = account.balance.saturating_add(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tx::Transaction;
    use ed25519_dalek::SigningKey;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&Digest::of(&[i, 9]).0)
    }

    fn address(k: &SigningKey) -> Address {
        k.verifying_key().to_bytes()
    }

    const PROPOSER: Address = [0xAA; 32];

    fn params() -> Params {
        Params {
            chain_id: 3,
            reward_per_block: 50,
            unbonding_blocks: 10,
            voting_period_blocks: 10,
            timelock_blocks: 10,
            quorum_percent: 33,
            pass_percent: 50,
            epoch_blocks: 100,
            slash_percent: 10,
        }
    }

    fn tx(k: &SigningKey, nonce: u64, fee: u64, action: Action) -> SignedTransaction {
        Transaction {
            chain_id: 3,
            sender: address(k),
            nonce,
            fee,
            expiry_height: 1_000,
            action,
        }
        .sign(k)
    }

    /// Sum of every account's holdings that the tests touch.
    fn holdings(l: &Ledger, addresses: &[Address]) -> u128 {
        addresses
            .iter()
            .map(|a| l.account(a).unwrap().total())
            .sum()
    }

    #[test]
    fn vouched_signatures_are_skipped_and_the_outcome_is_unchanged() {
        let (a, b) = (key(1), key(2));
        let genesis = Ledger::genesis(params(), &[(address(&a), 1_000), (address(&b), 10)]);
        let transfer = |nonce| {
            tx(
                &a,
                nonce,
                1,
                Action::Transfer {
                    to: address(&b),
                    amount: 7,
                },
            )
        };
        let txs = vec![transfer(0), transfer(1), transfer(2)];
        let plain = genesis.execute(1, &PROPOSER, &txs).unwrap();
        let vouched = |t: &SignedTransaction| t.tx.nonce != 1;
        let known = genesis.execute_known(1, &PROPOSER, &txs, &vouched).unwrap();
        assert_eq!(known.state_root, plain.state_root);
        assert_eq!(known.receipts, plain.receipts);
        // A bad signature the oracle does not vouch for is still caught,
        // at its index; one it wrongly vouches for is the caller's bug.
        let mut forged = txs.clone();
        forged[1].signature[0] ^= 1;
        assert!(matches!(
            genesis.execute_known(1, &PROPOSER, &forged, &vouched),
            Err(BlockError::Signature { index: 1, .. })
        ));
        assert!(
            genesis
                .execute_known(1, &PROPOSER, &forged, &|_| true)
                .is_ok()
        );
    }

    #[test]
    fn transfers_and_fees_conserve_supply_and_failures_keep_only_the_fee() {
        let (a, b) = (key(1), key(2));
        let genesis = Ledger::genesis(params(), &[(address(&a), 1_000), (address(&b), 10)]);
        let txs = vec![
            tx(
                &a,
                0,
                5,
                Action::Transfer {
                    to: address(&b),
                    amount: 300,
                },
            ),
            tx(
                &b,
                0,
                1,
                Action::Transfer {
                    to: address(&a),
                    amount: 10_000,
                },
            ),
            tx(
                &a,
                1,
                2,
                Action::Deploy {
                    code: vec![0],
                    gas_limit: 2_000,
                },
            ),
        ];
        let out = genesis.execute(1, &PROPOSER, &txs).unwrap();
        let l = &out.ledger;
        assert_eq!(out.receipts[0].status, Ok(()));
        assert_eq!(
            out.receipts[1].status,
            Err(Failure::InsufficientBalance {
                needed: 10_000,
                available: 309
            })
        );
        assert!(matches!(
            out.receipts[2].status,
            Err(Failure::Contract(ContractError::InvalidModule(_)))
        ));
        assert_eq!(
            l.account(&address(&a)).unwrap().balance,
            1_000 - 5 - 300 - 2
        );
        assert_eq!(l.account(&address(&b)).unwrap().balance, 10 + 300 - 1);
        assert_eq!(l.account(&PROPOSER).unwrap().balance, 5 + 1 + 2 + 50);
        assert_eq!(l.supply(), 1_010 + 50);
        let all = [address(&a), address(&b), PROPOSER];
        assert_eq!(holdings(l, &all), u128::from(l.supply()));
        assert_eq!(out.state_root, l.tree.root());
        // The same block on the same state gives the same root.
        let again = genesis.execute(1, &PROPOSER, &txs).unwrap();
        assert_eq!(again.state_root, out.state_root);
    }

    #[test]
    fn unpayable_transactions_make_the_block_invalid() {
        let a = key(1);
        let genesis = Ledger::genesis(params(), &[(address(&a), 100)]);
        let transfer = Action::Transfer {
            to: [1; 32],
            amount: 1,
        };
        let bad_nonce = tx(&a, 1, 1, transfer.clone());
        assert!(matches!(
            genesis.execute(1, &PROPOSER, &[bad_nonce]),
            Err(BlockError::BadNonce { index: 0, .. })
        ));
        let too_dear = tx(&a, 0, 101, transfer.clone());
        assert!(matches!(
            genesis.execute(1, &PROPOSER, &[too_dear]),
            Err(BlockError::CannotPayFee { .. })
        ));
        let mut forged = tx(&a, 0, 1, transfer.clone());
        forged.signature[0] ^= 1;
        assert!(matches!(
            genesis.execute(1, &PROPOSER, &[forged]),
            Err(BlockError::Signature { .. })
        ));
        let replayed = tx(&a, 0, 1, transfer);
        let out = genesis
            .execute(1, &PROPOSER, std::slice::from_ref(&replayed))
            .unwrap();
        assert!(matches!(
            out.ledger.execute(2, &PROPOSER, &[replayed]),
            Err(BlockError::BadNonce { index: 0, .. })
        ));
    }

    #[test]
    fn stake_unbonds_for_the_unbonding_period() {
        let (a, v) = (key(1), key(2));
        let genesis = Ledger::genesis(params(), &[(address(&a), 1_000)]);
        let block1 = vec![
            tx(&a, 0, 0, Action::Stake { amount: 400 }),
            tx(
                &a,
                1,
                0,
                Action::Delegate {
                    validator: address(&v),
                    amount: 100,
                },
            ),
        ];
        let l = genesis.execute(1, &PROPOSER, &block1).unwrap().ledger;
        let account = l.account(&address(&a)).unwrap();
        assert_eq!(
            (account.balance, account.staked, account.delegated),
            (500, 400, 100)
        );
        assert_eq!(l.bonded(), 500);
        assert_eq!(l.delegation(&address(&a), &address(&v)), 100);
        let block2 = vec![
            tx(&a, 2, 0, Action::Unstake { amount: 150 }),
            tx(
                &a,
                3,
                0,
                Action::Undelegate {
                    validator: address(&v),
                    amount: 100,
                },
            ),
            tx(&a, 4, 0, Action::Unstake { amount: 1_000 }),
        ];
        let out = l.execute(2, &PROPOSER, &block2).unwrap();
        assert_eq!(
            out.receipts[2].status,
            Err(Failure::InsufficientStake {
                needed: 1_000,
                available: 250
            })
        );
        let l = out.ledger;
        let account = l.account(&address(&a)).unwrap();
        assert_eq!(account.unbonding, vec![(12, 150), (12, 100)]);
        assert_eq!(l.bonded(), 250);
        assert_eq!(l.delegation(&address(&a), &address(&v)), 0);
        // Locked before height 12, released at the sender's next transaction after.
        let ping = |n| {
            tx(
                &a,
                n,
                0,
                Action::Transfer {
                    to: address(&v),
                    amount: 0,
                },
            )
        };
        let l = l.execute(11, &PROPOSER, &[ping(5)]).unwrap().ledger;
        assert_eq!(l.account(&address(&a)).unwrap().balance, 500);
        let l = l.execute(12, &PROPOSER, &[ping(6)]).unwrap().ledger;
        let account = l.account(&address(&a)).unwrap();
        assert_eq!((account.balance, account.staked), (750, 250));
        assert!(account.unbonding.is_empty());
        let all = [address(&a), address(&v), PROPOSER];
        assert_eq!(holdings(&l, &all), u128::from(l.supply()));
    }
}
