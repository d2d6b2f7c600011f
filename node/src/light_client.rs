//! `ballast light`: a balance or a transaction's outcome proven from the
//! genesis file, finalization certificates and state or receipt proofs
//! alone (`core::light` judges; this module
//! fetches over JSON-RPC). It asks every peer, believes none, and says
//! which check each lying peer failed.

use crate::client::Client;
use crate::genesis::Genesis;
use crate::json::parse_proof;
use ballast_core::codec::Reader;
use ballast_core::consensus::{Message, Subject};
use ballast_core::ledger::execute::Account;
use ballast_core::ledger::receipts::{ReceiptProof, ReceiptRecord};
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
pub struct Proven<T> {
    pub answer: T,
    /// The height of the certified block the answer was proven under.
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

/// One run of the client: what it trusts, whom it asks, and what it has
/// refused so far.
struct Session<S: FromRoster> {
    light: LightClient<S>,
    peers: Vec<Peer>,
    refused: Vec<(String, String)>,
    change_bytes: usize,
    epochs_followed: u64,
}

impl<S: FromRoster> Session<S> {
    /// A client trusting `genesis`'s set, asking `urls`.
    fn start(genesis: &Genesis, urls: &[String]) -> Result<Session<S>, LightClientError> {
        let light =
            LightClient::from_genesis(consensus_namespace(genesis.chain_id), &genesis.ledger())
                .map_err(|e| LightClientError::Setup(format!("the genesis file's set: {e}")))?;
        let peers = urls
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
        Ok(Session {
            light,
            peers,
            refused: Vec::new(),
            change_bytes: 0,
            epochs_followed: 0,
        })
    }

    fn refuse(&mut self, peer: &str, why: impl Into<String>) {
        self.refused.push((peer.to_string(), why.into()));
    }

    /// `answer`, proven from `peer` at `height`.
    fn proven<T>(self, answer: T, height: Height, peer: String) -> Proven<T> {
        Proven {
            answer,
            height,
            epoch: self.light.trusted().epoch,
            epochs_followed: self.epochs_followed,
            peer,
            refused: self.refused,
            change_bytes: self.change_bytes,
        }
    }

    /// Nothing proven: every refusal, for the user.
    fn nothing_proven(&self) -> LightClientError {
        let why: Vec<String> = self
            .refused
            .iter()
            .map(|(peer, why)| format!("{peer}: {why}"))
            .collect();
        LightClientError::NoProof(why.join("; "))
    }

    /// Moves the client to the newest epoch some peer can prove the way
    /// to, or only as far as the epoch that holds `until`.
    async fn follow_epochs(&mut self, until: Option<Height>) {
        for _ in 0..MAX_EPOCHS_PER_RUN {
            if until.is_some_and(|height| height <= self.light.trusted().last_height) {
                return;
            }
            if !self.advance_one().await {
                return;
            }
        }
    }

    /// Moves the client past its current epoch by the first peer whose
    /// change checks; whether one did.
    async fn advance_one(&mut self) -> bool {
        let epoch = self.light.trusted().epoch;
        for index in 0..self.peers.len() {
            let url = self.peers[index].url.clone();
            let answer = self.peers[index]
                .client
                .call("ballast_getEpochChange", vec![json!(epoch)])
                .await;
            let bytes = match answer {
                Ok(Value::Null) => continue, // this peer has not seen it end
                Ok(value) => match value["change"].as_str().and_then(|h| hex::decode(h).ok()) {
                    Some(bytes) => bytes,
                    None => {
                        self.refuse(&url, "epoch change is not hex");
                        continue;
                    }
                },
                Err(e) => {
                    self.refuse(&url, format!("unreachable: {e}"));
                    continue;
                }
            };
            self.change_bytes += bytes.len();
            let outcome = EpochChange::<S>::decode(&bytes)
                .map_err(|e| format!("epoch {epoch} change does not decode: {e}"))
                .and_then(|change| {
                    self.light
                        .advance(&change)
                        .map_err(|e| format!("epoch {epoch} change refused: {e}"))
                });
            match outcome {
                Ok(()) => {
                    self.epochs_followed += 1;
                    eprintln!(
                        "epoch {} -> {}: set of {} proven by {}",
                        epoch,
                        self.light.trusted().epoch,
                        self.light.trusted().powers.len(),
                        url
                    );
                    return true;
                }
                Err(why) => self.refuse(&url, why),
            }
        }
        false
    }
}

/// Follows the chain from `genesis` through the epochs the peers know,
/// then proves `address`'s account at the newest height a peer can prove.
pub async fn prove_account(
    genesis: &Genesis,
    urls: &[String],
    address: Address,
) -> Result<Proven<Option<Account>>, LightClientError> {
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
) -> Result<Proven<Option<Account>>, LightClientError> {
    let mut session = Session::<S>::start(genesis, urls)?;
    // Twice at most: a head that moved into a new epoch while we asked
    // sends the client back to follow it.
    for _ in 0..2 {
        session.follow_epochs(None).await;
        if let Some((peer, height, account)) = query(&mut session, &address).await {
            return Ok(session.proven(account, height, peer));
        }
    }
    Err(session.nothing_proven())
}

/// Proves the outcome of the finalized transaction `tx_hash` (success or
/// failure, gas, fee, events, output) by its receipt under the receipts
/// root of its certified block, following epochs from `genesis` only as
/// far as that block.
pub async fn prove_receipt(
    genesis: &Genesis,
    urls: &[String],
    tx_hash: Digest,
) -> Result<Proven<ReceiptRecord>, LightClientError> {
    crate::with_scheme!(
        genesis.consensus_scheme,
        async prove_receipt_under(genesis, urls, tx_hash)
    )
}

/// One peer's claim about a receipt, before any check.
struct ReceiptClaim {
    peer: usize,
    height: Height,
    proof: ReceiptProof,
}

/// [`prove_receipt`] on a chain whose certificates are `S`'s.
async fn prove_receipt_under<S: FromRoster>(
    genesis: &Genesis,
    urls: &[String],
    tx_hash: Digest,
) -> Result<Proven<ReceiptRecord>, LightClientError> {
    let mut session = Session::<S>::start(genesis, urls)?;
    let mut claims = Vec::new();
    for (peer, p) in session.peers.iter().enumerate() {
        match p
            .client
            .call(
                "ballast_getReceiptProof",
                vec![json!(hex::encode(tx_hash.0))],
            )
            .await
        {
            Ok(Value::Null) => {}
            Ok(answer) => match parse_receipt_claim(&answer) {
                Some((height, proof)) => claims.push(ReceiptClaim {
                    peer,
                    height,
                    proof,
                }),
                None => session
                    .refused
                    .push((p.url.clone(), "receipt answer is malformed".into())),
            },
            Err(e) => session
                .refused
                .push((p.url.clone(), format!("unreachable: {e}"))),
        }
    }
    if claims.is_empty() && session.refused.is_empty() {
        return Err(LightClientError::NoProof(
            "no peer knows a finalized transaction with this hash (pending, pruned, or never sent)"
                .into(),
        ));
    }
    // Lowest first: the client only moves forward through epochs, and the
    // transaction is in exactly one finalized block, so a false claim
    // below the true one is refused before the client passes it.
    claims.sort_by_key(|c| c.height);
    for claim in claims {
        session.follow_epochs(Some(claim.height)).await;
        let url = session.peers[claim.peer].url.clone();
        let outcome = match finalized_at(&session.peers[claim.peer].client, claim.height).await {
            Ok(finalized) => session.light.receipt(&finalized, &tx_hash, &claim.proof),
            Err(e) => {
                session.refuse(&url, e);
                continue;
            }
        };
        match outcome {
            Ok(record) => return Ok(session.proven(record, claim.height, url)),
            Err(LightError::WrongEpoch { expected, got }) if got > expected => session.refuse(
                &url,
                format!("no peer proved the way to epoch {got}, where it claims the block is"),
            ),
            Err(e) => session.refuse(&url, e.to_string()),
        }
    }
    Err(session.nothing_proven())
}

fn parse_receipt_claim(answer: &Value) -> Option<(Height, ReceiptProof)> {
    let height = answer["height"].as_u64()?;
    let index = usize::try_from(answer["index"].as_u64()?).ok()?;
    let record = hex::decode(answer["record"].as_str()?).ok()?;
    let siblings = answer["proof"]
        .as_array()?
        .iter()
        .take(ballast_core::merkle::MAX_PROOF_DEPTH + 1)
        .map(|v| {
            let bytes: [u8; 32] = hex::decode(v.as_str()?).ok()?.try_into().ok()?;
            Some(Digest(bytes))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((
        height,
        ReceiptProof {
            index,
            record,
            siblings,
        },
    ))
}

/// One peer's claim about an account, before any check.
struct Claim {
    peer: usize,
    height: Height,
    record: ProvenRecord,
}

/// Asks every peer for the account, checks the highest claims first, and
/// returns the first proven one; older valid answers are then refused as
/// stale.
async fn query<S: FromRoster>(
    session: &mut Session<S>,
    address: &Address,
) -> Option<(String, Height, Option<Account>)> {
    let mut claims = Vec::new();
    for (peer, p) in session.peers.iter().enumerate() {
        match p.client.account(address).await {
            Ok(answer) => match parse_claim(&answer) {
                Some((height, record)) => claims.push(Claim {
                    peer,
                    height,
                    record,
                }),
                None => session
                    .refused
                    .push((p.url.clone(), "account answer is malformed".into())),
            },
            Err(e) => session
                .refused
                .push((p.url.clone(), format!("unreachable: {e}"))),
        }
    }
    claims.sort_by_key(|c| std::cmp::Reverse(c.height));
    let mut proven = None;
    for claim in claims {
        let url = session.peers[claim.peer].url.clone();
        let outcome = match finalized_at(&session.peers[claim.peer].client, claim.height).await {
            Ok(finalized) => session.light.account(&finalized, address, &claim.record),
            Err(e) => {
                session.refuse(&url, e);
                continue;
            }
        };
        match outcome {
            Ok(account) if proven.is_none() => {
                proven = Some((url, claim.height, account));
            }
            Ok(_) => {}
            // A head in an epoch the client has not followed yet is no
            // lie: the caller follows the epochs again and asks again.
            Err(LightError::WrongEpoch { expected, got }) if got > expected => {}
            Err(LightError::PastEpochEnd { .. }) => {}
            Err(e @ (LightError::Stale { .. } | LightError::WrongEpoch { .. })) => {
                session.refuse(&url, format!("behind: {e}"))
            }
            Err(e) => session.refuse(&url, e.to_string()),
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
