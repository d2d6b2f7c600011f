//! `ballast light`: a balance proven from the genesis file, finalization
//! certificates and state proofs alone (`core::light` judges; this module
//! fetches over JSON-RPC). It asks every peer, believes none, and says
//! which check each lying peer failed.

use crate::client::Client;
use crate::genesis::Genesis;
use crate::json::parse_proof;
use ballast_core::codec::Reader;
use ballast_core::consensus::{Message, Subject};
use ballast_core::ledger::execute::Account;
use ballast_core::ledger::staking::consensus_namespace;
use ballast_core::ledger::tx::Address;
use ballast_core::light::{
    EpochChange, FinalizedBlock, FromRoster, LightClient, LightError, ProvenRecord,
};
use ballast_core::{Block, Digest, Height};
use serde_json::{Value, json};

/// Most epochs one run follows: a peer claiming an absurd head height
/// cannot keep the client fetching forever.
pub const MAX_EPOCHS_PER_RUN: u64 = 100_000;

/// A proven answer and what the client learned on the way.
pub struct Proven {
    pub address: Address,
    pub account: Option<Account>,
    pub height: Height,
    pub epoch: u64,
    pub epochs_followed: u64,
    /// The peer whose answer was proven.
    pub peer: String,
    /// Each refused answer: the peer and the check it failed.
    pub refused: Vec<(String, String)>,
    /// Bytes of epoch changes downloaded.
    pub change_bytes: usize,
}

/// Why the client could not prove anything.
#[derive(Debug, thiserror::Error)]
pub enum LightClientError {
    #[error("no peer gave a provable answer: {0}")]
    NoProof(String),
    #[error("{0}")]
    Setup(String),
}

struct Peer {
    url: String,
    client: Client,
}

/// Follows the chain from `genesis` through the epochs the peers know,
/// then proves `address`'s account at the newest height a peer can prove.
pub async fn prove_account(
    genesis: &Genesis,
    urls: &[String],
    address: Address,
) -> Result<Proven, LightClientError> {
    crate::with_scheme!(
        genesis.consensus_scheme,
        async prove_account_under(genesis, urls, address)
    )
}

/// [`prove_account`] on a chain whose certificates are `S`'s.
async fn prove_account_under<S: FromRoster>(
    genesis: &Genesis,
    urls: &[String],
    address: Address,
) -> Result<Proven, LightClientError> {
    let ledger = genesis.ledger();
    let mut light: LightClient<S> =
        LightClient::from_genesis(consensus_namespace(genesis.chain_id), &ledger)
            .map_err(|e| LightClientError::Setup(format!("the genesis file's set: {e}")))?;
    let peers: Vec<Peer> = urls
        .iter()
        .map(|url| {
            Client::new(url)
                .map(|client| Peer {
                    url: url.clone(),
                    client,
                })
                .map_err(|e| LightClientError::Setup(format!("{url}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut refused = Vec::new();
    let mut change_bytes = 0;
    let mut epochs_followed = 0;
    // Twice at most: a head that moved into a new epoch while we asked
    // sends the client back to follow it.
    for _ in 0..2 {
        follow_epochs(
            &mut light,
            &peers,
            &mut refused,
            &mut change_bytes,
            &mut epochs_followed,
        )
        .await;
        match query(&mut light, &peers, &address, &mut refused).await {
            Some((peer, height, account)) => {
                return Ok(Proven {
                    address,
                    account,
                    height,
                    epoch: light.trusted().epoch,
                    epochs_followed,
                    peer,
                    refused,
                    change_bytes,
                });
            }
            None => continue,
        }
    }
    let why: Vec<String> = refused
        .iter()
        .map(|(peer, why)| format!("{peer}: {why}"))
        .collect();
    Err(LightClientError::NoProof(why.join("; ")))
}

/// Moves `light` to the newest epoch some peer can prove the way to.
async fn follow_epochs<S: FromRoster>(
    light: &mut LightClient<S>,
    peers: &[Peer],
    refused: &mut Vec<(String, String)>,
    change_bytes: &mut usize,
    epochs_followed: &mut u64,
) {
    for _ in 0..MAX_EPOCHS_PER_RUN {
        let epoch = light.trusted().epoch;
        let mut advanced = false;
        for peer in peers {
            let answer = peer
                .client
                .call("ballast_getEpochChange", vec![json!(epoch)])
                .await;
            let bytes = match answer {
                Ok(Value::Null) => continue, // this peer has not seen it end
                Ok(value) => match value["change"].as_str().and_then(|h| hex::decode(h).ok()) {
                    Some(bytes) => bytes,
                    None => {
                        refused.push((peer.url.clone(), "epoch change is not hex".into()));
                        continue;
                    }
                },
                Err(e) => {
                    refused.push((peer.url.clone(), format!("unreachable: {e}")));
                    continue;
                }
            };
            *change_bytes += bytes.len();
            let outcome = EpochChange::<S>::decode(&bytes)
                .map_err(|e| format!("epoch {epoch} change does not decode: {e}"))
                .and_then(|change| {
                    light
                        .advance(&change)
                        .map_err(|e| format!("epoch {epoch} change refused: {e}"))
                });
            match outcome {
                Ok(()) => {
                    *epochs_followed += 1;
                    eprintln!(
                        "epoch {} -> {}: set of {} proven by {}",
                        epoch,
                        light.trusted().epoch,
                        light.trusted().powers.len(),
                        peer.url
                    );
                    advanced = true;
                    break;
                }
                Err(why) => refused.push((peer.url.clone(), why)),
            }
        }
        if !advanced {
            return;
        }
    }
}

/// One peer's claim about an account, before any check.
struct Claim<'a> {
    peer: &'a Peer,
    height: Height,
    record: ProvenRecord,
}

/// Asks every peer for the account, checks the highest claims first, and
/// returns the first proven one; older valid answers are then refused as
/// stale.
async fn query<S: FromRoster>(
    light: &mut LightClient<S>,
    peers: &[Peer],
    address: &Address,
    refused: &mut Vec<(String, String)>,
) -> Option<(String, Height, Option<Account>)> {
    let mut claims = Vec::new();
    for peer in peers {
        match peer.client.account(address).await {
            Ok(answer) => match parse_claim(&answer) {
                Some((height, record)) => claims.push(Claim {
                    peer,
                    height,
                    record,
                }),
                None => refused.push((peer.url.clone(), "account answer is malformed".into())),
            },
            Err(e) => refused.push((peer.url.clone(), format!("unreachable: {e}"))),
        }
    }
    claims.sort_by_key(|c| std::cmp::Reverse(c.height));
    let mut proven = None;
    for claim in claims {
        let outcome = match finalized_at(&claim.peer.client, claim.height).await {
            Ok(finalized) => light.account(&finalized, address, &claim.record),
            Err(e) => {
                refused.push((claim.peer.url.clone(), e));
                continue;
            }
        };
        match outcome {
            Ok(account) if proven.is_none() => {
                proven = Some((claim.peer.url.clone(), claim.height, account));
            }
            Ok(_) => {}
            // A head in an epoch the client has not followed yet is no
            // lie: the caller follows the epochs again and asks again.
            Err(LightError::WrongEpoch { expected, got }) if got > expected => {}
            Err(LightError::PastEpochEnd { .. }) => {}
            Err(e @ (LightError::Stale { .. } | LightError::WrongEpoch { .. })) => {
                refused.push((claim.peer.url.clone(), format!("behind: {e}")))
            }
            Err(e) => refused.push((claim.peer.url.clone(), e.to_string())),
        }
    }
    proven
}

fn parse_claim(answer: &Value) -> Option<(Height, ProvenRecord)> {
    let height = answer["height"].as_u64()?;
    let value = match &answer["value"] {
        Value::Null => None,
        v => Some(hex::decode(v.as_str()?).ok()?),
    };
    let proof = parse_proof(&answer["proof"])?;
    Some((height, ProvenRecord { value, proof }))
}

/// Decodes one hex block of an RPC answer.
fn decode_block(v: &Value) -> Option<Block> {
    let bytes = hex::decode(v.as_str()?).ok()?;
    let mut r = Reader::new(&bytes);
    let block = Block::decode(&mut r).ok()?;
    r.finish().ok()?;
    Some(block)
}

/// One `ballast_getFinalizedBlocks` answer: its blocks, then its links.
async fn finalized_blocks(
    client: &Client,
    from: Height,
    count: usize,
) -> Result<(Vec<Block>, Value), String> {
    let answer = client
        .call(
            "ballast_getFinalizedBlocks",
            vec![json!(from), json!(count)],
        )
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let mut blocks: Vec<Block> = answer["blocks"]
        .as_array()
        .ok_or("finalized blocks answer is malformed")?
        .iter()
        .map(decode_block)
        .collect::<Option<_>>()
        .ok_or("a finalized block does not decode")?;
    for link in answer["links"].as_array().into_iter().flatten() {
        blocks.push(decode_block(link).ok_or("a link block does not decode")?);
    }
    Ok((blocks, answer["certificate"].clone()))
}

/// The block at `height` with the certificate that finalized it (signed
/// by the set of its own epoch) and the blocks linking the two, from one
/// peer; unchecked (the light client checks).
async fn finalized_at<S: FromRoster>(
    client: &Client,
    height: Height,
) -> Result<FinalizedBlock<S>, String> {
    let (blocks, certificate) = finalized_blocks(client, height, 1).await?;
    let certificate = certificate
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .ok_or("no certificate")?;
    let certificate = match Message::<S>::decode(&certificate) {
        Ok(Message::Certificate(c)) => c,
        _ => return Err("the certificate does not decode".into()),
    };
    let named: Digest = match certificate.subject {
        Subject::Finalize { digest, .. } => digest,
        _ => return Err("the certificate does not finalize".into()),
    };
    let mut blocks = blocks.into_iter();
    let block = blocks.next().ok_or("no block at the height")?;
    if block.height != height {
        return Err(format!("asked for height {height}, got {}", block.height));
    }
    // The certificate finalized a stretch ending above `height`: fetch the
    // blocks up to the one it names (the light client checks they chain).
    let mut links: Vec<Block> = blocks.collect();
    if block.digest() != named && !links.iter().any(|b| b.digest() == named) {
        let (more, _) =
            finalized_blocks(client, height + 1, ballast_core::sync::MAX_LINK_BLOCKS).await?;
        links = more;
    }
    if block.digest() == named {
        links.clear();
    } else if let Some(end) = links.iter().position(|b| b.digest() == named) {
        links.truncate(end + 1);
    }
    Ok(FinalizedBlock {
        block,
        links,
        certificate: certificate.certificate,
    })
}
