//! What a node keeps and serves for light clients (`core::light`): at the
//! end of each epoch, the block that ends it, the certificate that
//! finalized it (with the blocks linking it to the one the certificate
//! names), and proofs of the next set, the roster and the parameters under
//! that block's state root. Stored once per epoch (`ChainDb::put_epoch_change`)
//! so that pruning blocks never strands a client that starts at genesis.

use ballast_core::consensus::{Message, Subject};
use ballast_core::ledger::execute::params_key;
use ballast_core::ledger::staking::{epoch_key, roster_key, vote_roster_key};
use ballast_core::light::{EpochChange, FinalizedBlock, ProvenRecord};
use ballast_core::scheme::Scheme;
use ballast_core::state::smt::{Key, Tree};
use ballast_core::sync::MAX_LINK_BLOCKS;
use ballast_core::{Block, Digest};

/// The change past the epoch `block` ends, from the finalization
/// certificate `certificate` (a `Message::Certificate`, as stored per
/// height), blocks found by `find`, and the state `tree` after `block`.
pub fn epoch_change<S: Scheme>(
    block: &Block,
    certificate: &[u8],
    find: &dyn Fn(&Digest) -> Option<Block>,
    tree: &Tree,
) -> Result<EpochChange<S>, String> {
    let certificate = match Message::<S>::decode(certificate) {
        Ok(Message::Certificate(c)) => c,
        Ok(_) => return Err("the stored certificate is another message".into()),
        Err(e) => return Err(format!("the stored certificate does not decode: {e}")),
    };
    let Subject::Finalize { digest: named, .. } = certificate.subject else {
        return Err("the stored certificate does not finalize".into());
    };
    // From the named block back to `block`, through parents.
    let digest = block.digest();
    let mut links = Vec::new();
    let mut cursor = named;
    while cursor != digest {
        if links.len() == MAX_LINK_BLOCKS {
            return Err(format!(
                "the certificate names a block more than {MAX_LINK_BLOCKS} blocks past the epoch's end"
            ));
        }
        let link = find(&cursor).ok_or_else(|| {
            format!(
                "block {} between the epoch's end and its certificate is missing",
                cursor.short()
            )
        })?;
        cursor = link.parent;
        links.push(link);
    }
    links.reverse();
    let record = |key: Key| ProvenRecord {
        value: tree.get(&key).map(<[u8]>::to_vec),
        proof: tree.prove(&key),
    };
    Ok(EpochChange {
        last: FinalizedBlock {
            block: block.clone(),
            links,
            certificate: certificate.certificate,
        },
        epoch_set: record(epoch_key()),
        roster: record(roster_key()),
        vote_roster: record(vote_roster_key()),
        params: record(params_key()),
    })
}

/// [`epoch_change`], encoded as `ballast_getEpochChange` serves it.
pub fn encoded_epoch_change<S: Scheme>(
    block: &Block,
    certificate: &[u8],
    find: &dyn Fn(&Digest) -> Option<Block>,
    tree: &Tree,
) -> Result<Vec<u8>, String> {
    epoch_change::<S>(block, certificate, find, tree).map(|change| change.encode())
}
