//! Parallel block execution, scheduled by account sets.
//!
//! Why account sets and not Block-STM: a transfer names every account it
//! touches (sender, receiver, and the proposer's fee credit), so the
//! conflicts of a block of transfers are known before anything runs, and a
//! schedule built from them never aborts or re-executes. Block-STM's
//! optimistic runs, read-set tracking and validation pay off when footprints
//! are unknown; here that is contracts, staking and governance, and they run
//! alone, in block order, between the parallel steps. Read-set tracking
//! through the contract host calls is the step that would let calls join
//! the lanes.
//!
//! The plan: transactions with a known footprint are grouped into lanes
//! (connected components of the accounts they touch), lanes are dealt to
//! workers (longest first to the least loaded), each worker runs its lanes
//! on its own copy of the state, and the copies are merged by
//! [`crate::state::smt::Tree::merge`] (a subtree only one copy changed is
//! taken whole, so the merge hashes only where copies' changes meet).
//! Lanes share no account, so the merge is exact. The one account every
//! transaction touches, the proposer's, only ever receives fees there (a
//! transaction that names the proposer runs alone): saturating additions of
//! non-negative amounts commute, so the merged credit is the sequential one.
//! The result (state root, receipts, the first error) is exactly
//! [`Ledger::execute_known`]'s, whatever the worker count: checked by
//! `core/tests/parallel_execution.rs` on random blocks full of conflicts.

use super::execute::{BlockError, Executed, Ledger, Receipt, account_key, checked_signatures};
use super::tx::{Action, Address, MAX_BLOCK_GAS, SignedTransaction};
use crate::types::Height;
use crate::workers::{Job, Workers};
use std::collections::BTreeMap;
use std::ops::Range;

/// Fewer transactions than this in a parallel step run in order on the
/// block's state: copying the state, starting threads and merging would
/// cost more than they save.
pub const MIN_PARALLEL_STEP_TXS: usize = 64;

/// Whether a step's lanes are worth running at once: more than one, and
/// enough transactions to pay for the copies and the merge.
pub fn worth_splitting(lanes: &[Vec<usize>]) -> bool {
    lanes.len() > 1 && lanes.iter().map(Vec::len).sum::<usize>() >= MIN_PARALLEL_STEP_TXS
}

/// The accounts a transaction touches besides the proposer's fee credit,
/// when they are known before it runs; `None`: unknown, or it names the
/// proposer, so it must run alone.
pub fn footprint(tx: &SignedTransaction, proposer: &Address) -> Option<[Address; 2]> {
    match &tx.tx.action {
        Action::Transfer { to, .. } if tx.tx.sender != *proposer && to != proposer => {
            Some([tx.tx.sender, *to])
        }
        _ => None,
    }
}

/// One step of a block's execution plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Transaction indices in lanes: each lane in block order, no account
    /// shared between two lanes.
    Lanes(Vec<Vec<usize>>),
    /// A transaction without a known footprint: runs alone on the state so
    /// far.
    Alone(usize),
}

/// The plan for `txs`: runs of footprinted transactions as lanes, the rest
/// alone, in block order.
pub fn plan(txs: &[SignedTransaction], proposer: &Address) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut start = 0;
    for (index, tx) in txs.iter().enumerate() {
        if footprint(tx, proposer).is_none() {
            if start < index {
                steps.push(Step::Lanes(lanes(txs, start..index, proposer)));
            }
            steps.push(Step::Alone(index));
            start = index + 1;
        }
    }
    if start < txs.len() {
        steps.push(Step::Lanes(lanes(txs, start..txs.len(), proposer)));
    }
    steps
}

/// The connected components of `range` by shared accounts (union-find),
/// each in block order, ordered by their first transaction.
fn lanes(txs: &[SignedTransaction], range: Range<usize>, proposer: &Address) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..range.len()).collect();
    let mut owner: BTreeMap<Address, usize> = BTreeMap::new();
    for (offset, index) in range.clone().enumerate() {
        let accounts = footprint(&txs[index], proposer).expect("lanes hold footprinted txs");
        for account in accounts {
            match owner.get(&account) {
                Some(&other) => union(&mut parent, offset, other),
                None => {
                    owner.insert(account, offset);
                }
            }
        }
    }
    let mut by_root: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for offset in 0..range.len() {
        let root = find(&mut parent, offset);
        by_root.entry(root).or_default().push(range.start + offset);
    }
    let mut lanes: Vec<Vec<usize>> = by_root.into_values().collect();
    lanes.sort_by_key(|lane| lane[0]);
    lanes
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (a, b) = (find(parent, a), find(parent, b));
    if a != b {
        parent[a.max(b)] = a.min(b);
    }
}

/// Lanes dealt to `count` workers: longest first, each to the least loaded
/// (ties to the lowest worker), so a hot account's long lane gets a worker
/// of its own while the short lanes fill the others.
fn deal(mut lanes: Vec<Vec<usize>>, count: usize) -> Vec<Vec<Vec<usize>>> {
    assert!(count > 0, "at least one worker");
    lanes.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    let mut shares: Vec<Vec<Vec<usize>>> = vec![Vec::new(); count];
    let mut loads = vec![0usize; count];
    for lane in lanes {
        let worker = (0..count)
            .min_by_key(|&w| (loads[w], w))
            .expect("count > 0");
        loads[worker] += lane.len();
        shares[worker].push(lane);
    }
    shares
}

/// What one worker did with its lanes.
struct ShareOutcome {
    ledger: Ledger,
    receipts: Vec<(usize, Receipt)>,
    /// The earliest failing transaction among its lanes.
    error: Option<(usize, BlockError)>,
}

impl Ledger {
    /// [`Ledger::execute_known`] with lanes of independent transactions run
    /// by `workers`: the same outcome, in less time when blocks hold many
    /// transfers between distinct accounts.
    pub fn execute_parallel(
        &self,
        height: Height,
        proposer: &Address,
        txs: &[SignedTransaction],
        verified: &dyn Fn(&SignedTransaction) -> bool,
        workers: &dyn Workers,
    ) -> Result<Executed, BlockError> {
        // Nothing to run at once (contract calls, small blocks): the plain
        // path, without the plan's bookkeeping.
        let splits = |step: &Step| matches!(step, Step::Lanes(lanes) if worth_splitting(lanes));
        if workers.count() == 1 {
            return self.execute_known(height, proposer, txs, verified);
        }
        let whole = plan(txs, proposer);
        if !whole.iter().any(splits) {
            return self.execute_known(height, proposer, txs, verified);
        }
        let gas: u64 = txs.iter().map(|tx| tx.tx.action.gas_limit()).sum();
        if gas > MAX_BLOCK_GAS {
            return Err(BlockError::BlockGasExceeded { gas });
        }
        let signatures = checked_signatures(txs, verified);
        debug_assert_eq!(signatures.len(), txs.len());
        // A bad signature makes the block invalid unless a transaction
        // before it already did: only that prefix needs running.
        let first_bad = signatures.iter().position(Result::is_err);
        let runnable = &txs[..first_bad.unwrap_or(txs.len())];
        let mut block = self.start_block(height, proposer);
        let mut receipts: Vec<Option<Receipt>> = (0..runnable.len()).map(|_| None).collect();
        // The whole block's plan serves unless a bad signature cut it short.
        let steps = match first_bad {
            None => whole,
            Some(_) => plan(runnable, proposer),
        };
        for step in steps {
            match step {
                Step::Alone(index) => {
                    receipts[index] = Some(
                        block
                            .ledger
                            .apply_alone(runnable, index, height, proposer)?,
                    );
                }
                Step::Lanes(lanes) if !worth_splitting(&lanes) => {
                    let mut indices: Vec<usize> = lanes.into_iter().flatten().collect();
                    indices.sort_unstable();
                    for index in indices {
                        receipts[index] = Some(
                            block
                                .ledger
                                .apply_alone(runnable, index, height, proposer)?,
                        );
                    }
                }
                Step::Lanes(lanes) => {
                    let shares = deal(lanes, workers.count());
                    block.ledger = block.ledger.run_shares(
                        height,
                        proposer,
                        runnable,
                        &shares,
                        &mut receipts,
                        workers,
                    )?;
                }
            }
        }
        if let Some(index) = first_bad {
            let error = signatures
                .into_iter()
                .nth(index)
                .and_then(Result::err)
                .expect("the first bad signature");
            return Err(BlockError::Signature { index, error });
        }
        block.receipts = receipts
            .into_iter()
            .map(|receipt| receipt.expect("every transaction ran"))
            .collect();
        block.finish()
    }

    /// Runs `txs[index]` on this state, as sequential execution does.
    fn apply_alone(
        &mut self,
        txs: &[SignedTransaction],
        index: usize,
        height: Height,
        proposer: &Address,
    ) -> Result<Receipt, BlockError> {
        let tx = &txs[index];
        self.payable(tx, height)
            .map_err(|e| super::execute::with_index(e, index))?;
        self.apply(tx, height, proposer)
    }

    /// Runs each share of lanes on its own copy of `self` and merges them.
    fn run_shares(
        &self,
        height: Height,
        proposer: &Address,
        txs: &[SignedTransaction],
        shares: &[Vec<Vec<usize>>],
        receipts: &mut [Option<Receipt>],
        workers: &dyn Workers,
    ) -> Result<Ledger, BlockError> {
        let mut slots: Vec<Option<ShareOutcome>> = (0..shares.len()).map(|_| None).collect();
        let jobs: Vec<Job<'_>> = shares
            .iter()
            .zip(slots.iter_mut())
            .map(|(share, slot)| {
                Box::new(move || *slot = Some(self.run_share(height, proposer, txs, share)))
                    as Job<'_>
            })
            .collect();
        workers.run(jobs);
        let mut outcomes: Vec<ShareOutcome> = slots
            .into_iter()
            .map(|slot| slot.expect("every job ran"))
            .collect();
        // The earliest failure is the block's, as in sequential execution:
        // every transaction before it saw exactly the sequential state.
        let failure = outcomes
            .iter_mut()
            .filter_map(|outcome| outcome.error.take())
            .min_by_key(|(index, _)| *index);
        if let Some((_, error)) = failure {
            return Err(error);
        }
        // Each copy credited the proposer its own fees: undo that in each
        // (one write), merge the rest, then credit the sum once.
        let proposer_key = account_key(proposer);
        let proposer_before = self.tree.get(&proposer_key);
        let mut merged = self.clone();
        let mut fees: u64 = 0;
        for outcome in outcomes {
            let tree = match proposer_before {
                Some(value) => outcome.ledger.tree.insert(proposer_key, value),
                None => outcome.ledger.tree.remove(&proposer_key),
            };
            merged.tree = self
                .tree
                .merge(&merged.tree, &tree)
                .expect("lanes share no account");
            for (index, receipt) in outcome.receipts {
                fees = fees.saturating_add(receipt.fee_paid);
                receipts[index] = Some(receipt);
            }
        }
        // Saturating additions of fees commute: one credit of the sum is
        // the sequential outcome.
        let mut account = merged.account(proposer).map_err(BlockError::CorruptState)?;
        account.balance = account.balance.saturating_add(fees);
        merged.put_account(proposer, &account);
        Ok(merged)
    }

    fn run_share(
        &self,
        height: Height,
        proposer: &Address,
        txs: &[SignedTransaction],
        lanes: &[Vec<usize>],
    ) -> ShareOutcome {
        let mut ledger = self.clone();
        let mut receipts = Vec::new();
        let mut error: Option<(usize, BlockError)> = None;
        for lane in lanes {
            for &index in lane {
                match ledger.apply_alone(txs, index, height, proposer) {
                    Ok(receipt) => receipts.push((index, receipt)),
                    Err(failed) => {
                        if error.as_ref().is_none_or(|(first, _)| index < *first) {
                            error = Some((index, failed));
                        }
                        // The rest of this lane came after the failure.
                        break;
                    }
                }
            }
        }
        ShareOutcome {
            ledger,
            receipts,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dealing_gives_the_longest_lane_a_worker_of_its_own() {
        let lanes = vec![vec![0], vec![1, 2, 3, 4], vec![5], vec![6], vec![7]];
        let shares = deal(lanes, 2);
        assert_eq!(shares[0], vec![vec![1, 2, 3, 4]]);
        assert_eq!(shares[1], vec![vec![0], vec![5], vec![6], vec![7]]);
        assert_eq!(deal(Vec::new(), 3), vec![Vec::<Vec<usize>>::new(); 3]);
    }

    #[test]
    fn union_find_joins_chains() {
        let mut parent: Vec<usize> = (0..5).collect();
        union(&mut parent, 3, 4);
        union(&mut parent, 1, 4);
        assert_eq!(find(&mut parent, 3), 1);
        assert_eq!(find(&mut parent, 0), 0);
    }
}
