//! What a restarting engine reads from its store, and what it prunes as
//! finality moves on: both bounded by the views above the finalized block,
//! never by the age of the chain.
//!
//! A restart needs the latest epoch start, the finalized record, the votes
//! this replica signed and the certificates it held in views above the
//! finalized one (the safety rules and [`Simplex::restore`] act only on
//! those), and the blocks those name. Votes and certificates at or below
//! the finalized view are never read again, so they are deleted as soon as
//! the finalized record that makes them dead is written, after it in the
//! store's write order: a crash that loses the record loses the deletion.
//! Blocks are kept (peers and the application read them); only the ones a
//! restart needs are read back, by digest.
//!
//! [`Simplex::restore`]: ballast_core::consensus::Simplex

use crate::{Store, StoreError};
use ballast_core::consensus::{Epoch, Record, Subject, record_prefix as prefix};
use ballast_core::scheme::Scheme;
use ballast_core::{Block, Digest, Height, View};
use std::collections::BTreeSet;

/// See [`crate::engine::mute_through`].
pub(crate) fn mute_through(store: &mut impl Store, last: View) -> Result<(), StoreError> {
    store.put(&[prefix::MUTED_THROUGH], &last.to_be_bytes())?;
    store.sync()
}

/// The view through which this replica signs nothing, if it lost its vote
/// records. The record is synced as it is written, so no crash tears
/// it; a damaged one stops the engine rather than let it guess.
pub(crate) fn muted_through(store: &impl Store) -> Result<Option<View>, StoreError> {
    match store.get(&[prefix::MUTED_THROUGH])? {
        None => Ok(None),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(be) => Ok(Some(View::from_be_bytes(be))),
            Err(_) => Err(StoreError(
                "the mute record is torn; the replica would not know which views it may sign in"
                    .into(),
            )),
        },
    }
}

/// The latest epoch start this replica recorded (epoch 0 from genesis if
/// none), and how many records it found torn on the way.
pub(crate) fn latest_epoch<S: Scheme>(
    store: &impl Store,
) -> Result<(Epoch, Block, usize), StoreError> {
    // Epoch starts are synced before the epoch's first vote, so only the
    // latest can be torn; one more is read to fall back on.
    let mut torn = 0;
    for (_, value) in store.last(&[prefix::EPOCH], 2)? {
        match Record::<S>::decode(&value) {
            Ok(Record::Epoch { epoch, anchor, .. }) => return Ok((epoch, anchor, torn)),
            _ => torn += 1,
        }
    }
    Ok((0, Block::genesis(), torn))
}

/// The records a restart needs, given the epoch's anchor and last height:
/// the finalized record, the votes and certificates of views above both
/// the anchor and the finalized block, and the blocks they name with their
/// ancestors down to that view (plus, if the finalized block is past the
/// epoch's end, its ancestors down to the end). Also the number of torn
/// records met.
pub(crate) fn needed_records<S: Scheme>(
    store: &impl Store,
    anchor: &Block,
    last_height: Height,
) -> Result<(Vec<Record<S>>, usize), StoreError> {
    let mut records = Vec::new();
    let mut torn = 0;
    let mut read: BTreeSet<Digest> = BTreeSet::new();
    let mut floor_view = anchor.view;
    if let Some(bytes) = store.get(&[prefix::FINALIZED])? {
        match Record::<S>::decode(&bytes) {
            Ok(Record::Finalized { block, certificate }) => {
                floor_view = floor_view.max(block.view);
                // A finalized block past the epoch's end: the epoch ends
                // at its ancestor at the last height.
                let mut parent = block.parent;
                let mut height = block.height;
                while height > last_height {
                    let Some(ancestor) = read_block::<S>(store, &parent, &mut torn)? else {
                        break;
                    };
                    read.insert(parent);
                    (parent, height) = (ancestor.parent, ancestor.height);
                    records.push(Record::Block(ancestor));
                }
                records.push(Record::Finalized { block, certificate });
            }
            _ => torn += 1,
        }
    }
    let mut named: Vec<Digest> = Vec::new();
    for kind in [prefix::VOTE, prefix::CERTIFICATE] {
        let start = Record::<S>::view_start_key(kind, floor_view + 1);
        for (_, value) in store.scan_from(&[kind], &start)? {
            let Ok(record) = Record::<S>::decode(&value) else {
                torn += 1;
                continue;
            };
            let subject = match &record {
                Record::Vote(subject) => Some(*subject),
                Record::Certificate(certificate) => Some(certificate.subject),
                _ => None,
            };
            named.extend(subject.as_ref().and_then(Subject::digest));
            records.push(record);
        }
    }
    // Each block named, and its ancestors above the floor view. Each step
    // goes down at least one view, so the walk is bounded by the views
    // above the floor.
    while let Some(digest) = named.pop() {
        if !read.insert(digest) {
            continue;
        }
        let Some(block) = read_block::<S>(store, &digest, &mut torn)? else {
            continue;
        };
        if block.view > floor_view + 1 {
            named.push(block.parent);
        }
        records.push(Record::Block(block));
    }
    Ok((records, torn))
}

/// The stored block with `digest`, if there is one that decodes.
fn read_block<S: Scheme>(
    store: &impl Store,
    digest: &Digest,
    torn: &mut usize,
) -> Result<Option<Block>, StoreError> {
    let Some(bytes) = store.get(&Record::<S>::block_key(digest))? else {
        return Ok(None);
    };
    match Record::<S>::decode(&bytes) {
        Ok(Record::Block(block)) => Ok(Some(block)),
        _ => {
            *torn += 1;
            Ok(None)
        }
    }
}

/// Deletes the vote and certificate records of views up to `view` (the
/// view of a block just recorded as finalized): no safety rule and no
/// restart reads them again.
pub(crate) fn prune_through<S: Scheme>(
    store: &mut impl Store,
    view: View,
) -> Result<(), StoreError> {
    for kind in [prefix::VOTE, prefix::CERTIFICATE] {
        store.delete_range(
            &Record::<S>::view_start_key(kind, 0),
            &Record::<S>::view_start_key(kind, view + 1),
        )?;
    }
    Ok(())
}
