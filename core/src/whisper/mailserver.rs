//! Mailserver wire formats and the in-memory archive index (whisper-v6.md §10), plus the
//! Status confirmation packets (codes 11/12, §9).
//!
//! Contract:
//! - Codecs, all total (typed [`WhisperError`], never a panic):
//!   [`RequestPayload`] (the strict 6-item `MessagesRequestPayload` carried, encrypted and
//!   signed, inside a code-126 envelope, §10.1), [`MessagesRequest`] (the unencrypted list form
//!   of code 126, §10.2), [`RequestCompletion`] (code 125: one RLP byte string, Go's
//!   concatenated form, §10.4), [`decode_p2p_messages`] (code 127: a list of envelopes or one
//!   envelope, §10.3), [`MessageResponse`] (code 12) and the batch ack (code 11).
//! - [`Archive`] is the mailserver's index: envelopes keyed like status-go's LevelDB key
//!   `sentTime(4, BE) ‖ hash(32) ‖ topic(4)` and iterated **ascending** by (sent time, hash).
//!   It is bounded by [`Archive::max_envelopes`] and [`Archive::max_bytes`] (raw envelope
//!   bytes); when full, the entry with the **oldest sent time** (ties: smallest hash) is
//!   evicted first, because history requests ask for recent ranges. The durable copy lives in
//!   the driver (SQLite) and is replayed with [`Archive::insert_raw`] at start.
//! - [`Archive::query`] reproduces `processRequestInBundles`: envelopes with
//!   `lower ≤ sent ≤ upper` whose topic bloom the request bloom covers, starting strictly after
//!   the cursor; when `limit` envelopes have been taken the cursor is the last one's
//!   `sentTime ‖ hash` (even if nothing follows, as in Go).

use std::collections::BTreeMap;

use super::bloom::{bloom_match, Bloom, Topic, BLOOM_LEN};
use super::envelope::{Envelope, EnvelopeFields, EnvelopeView};
use super::WhisperError;
use crate::keccak::keccak256;
use crate::rlp::{Encoder, Rlp};

/// Length of a cursor: `sentTime(4) ‖ envelopeHash(32)` (status-go `CursorLength`).
pub const CURSOR_LEN: usize = 36;
/// Length of an archive key: cursor ‖ topic(4) (status-go `DBKeyLength`).
pub const ARCHIVE_KEY_LEN: usize = 40;
/// Length of a request id / envelope hash.
pub const HASH_LEN: usize = 32;
/// Prefix of a failed request-complete payload (status-go `sendHistoricMessageErrorResponse`).
pub const ERROR_PREFIX: &[u8] = b"ERROR=";
/// The only `MultiVersionResponse` version (code 12).
pub const MESSAGE_RESPONSE_VERSION: u64 = 1;
/// `EnvelopeTimeNotSynced` as the 2019 Go code numbers it (an `iota` quirk; §9).
pub const ENVELOPE_TIME_NOT_SYNCED: u64 = 36;
/// `EnvelopeOtherError` as the 2019 Go code numbers it (§9).
pub const ENVELOPE_OTHER_ERROR: u64 = 37;
/// Password whose PBKDF2 key encrypts Status's mailserver requests (`MailServerPassword`).
pub const STATUS_MAILSERVER_PASSWORD: &str = "status-offline-inbox";
/// Server default when a request's limit is 0 (status-go `defaultLimit`).
pub const DEFAULT_REQUEST_LIMIT: u32 = 2000;
/// Upper bound of `MessagesRequest.Limit` in the list form (§10.2 validation).
pub const MAX_LIST_REQUEST_LIMIT: u32 = 1000;
/// Seconds added to `now` when a request's upper bound is 0 (status-go `decodeRequest`).
pub const OPEN_UPPER_BOUND_SECS: u32 = 60;

/// `MessagesRequestPayload` [SG-ms]: the decrypted payload of a code-126 request envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestPayload {
    /// Lowest sent time, Unix seconds (inclusive).
    pub lower: u32,
    /// Highest sent time, Unix seconds (inclusive); 0 = now + 60 s on the server.
    pub upper: u32,
    /// Topics wanted, as a bloom filter.
    pub bloom: Bloom,
    /// Most envelopes wanted in this page (0 = server default).
    pub limit: u32,
    /// Empty, or the 36-byte cursor of the previous page.
    pub cursor: Vec<u8>,
    /// The client accepts lists of envelopes per code-127 packet.
    pub batch: bool,
}

impl RequestPayload {
    /// `RLP([Lower, Upper, Bloom, Limit, Cursor, Batch])` — 6 items; a 5-item list fails Go
    /// decoding (§10.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(128);
        e.list(|e| {
            e.u64(self.lower.into())
                .u64(self.upper.into())
                .bytes(&self.bloom.0)
                .u64(self.limit.into())
                .bytes(&self.cursor)
                .bool(self.batch);
        });
        e.finish()
    }

    /// Strict decode (exactly 6 items, 64-byte bloom, cursor empty or 36 bytes).
    pub fn decode(buf: &[u8]) -> Result<RequestPayload, WhisperError> {
        let item = Rlp::new(buf)?;
        let mut l = item.list()?;
        let lower = l.item()?.u32()?;
        let upper = l.item()?.u32()?;
        let bloom = bloom_from(l.item()?.bytes()?)?;
        let limit = l.item()?.u32()?;
        let cursor = l.item()?.bytes()?.to_vec();
        let batch = l.item()?.bool()?;
        l.finish()?;
        check_cursor(&cursor)?;
        Ok(RequestPayload {
            lower,
            upper,
            bloom,
            limit,
            cursor,
            batch,
        })
    }
}

fn bloom_from(b: &[u8]) -> Result<Bloom, WhisperError> {
    let arr: [u8; BLOOM_LEN] = b
        .try_into()
        .map_err(|_| WhisperError::BadBloomLength { found: b.len() })?;
    Ok(Bloom(arr))
}

fn check_cursor(cursor: &[u8]) -> Result<(), WhisperError> {
    if !cursor.is_empty() && cursor.len() != CURSOR_LEN {
        return Err(WhisperError::InvalidRequest(
            "cursor must be empty or 36 bytes",
        ));
    }
    Ok(())
}

/// `MessagesRequest` [W-doc], the unencrypted list form of code 126 (§10.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagesRequest {
    /// Request id (32 bytes once validated).
    pub id: Vec<u8>,
    /// Lowest sent time (inclusive).
    pub from: u32,
    /// Highest sent time (inclusive).
    pub to: u32,
    /// Most envelopes wanted (≤ 1000).
    pub limit: u32,
    /// Empty or 36-byte cursor.
    pub cursor: Vec<u8>,
    /// Topics wanted (64 bytes once validated).
    pub bloom: Vec<u8>,
}

impl MessagesRequest {
    /// `[ID, From, To, Limit, Cursor, Bloom]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(160);
        e.list(|e| {
            e.bytes(&self.id)
                .u64(self.from.into())
                .u64(self.to.into())
                .u64(self.limit.into())
                .bytes(&self.cursor)
                .bytes(&self.bloom);
        });
        e.finish()
    }

    /// Strict 6-item decode (no validation; see [`Self::validate`]).
    pub fn decode(buf: &[u8]) -> Result<MessagesRequest, WhisperError> {
        let item = Rlp::new(buf)?;
        let mut l = item.list()?;
        let id = l.item()?.bytes()?.to_vec();
        let from = l.item()?.u32()?;
        let to = l.item()?.u32()?;
        let limit = l.item()?.u32()?;
        let cursor = l.item()?.bytes()?.to_vec();
        let bloom = l.item()?.bytes()?.to_vec();
        l.finish()?;
        Ok(MessagesRequest {
            id,
            from,
            to,
            limit,
            cursor,
            bloom,
        })
    }

    /// Go `MessagesRequest.Validate`: 32-byte id, `from ≤ to`, `limit ≤ 1000`, non-empty
    /// bloom (we also require 64 bytes, the only size a bloom match can use). Returns the id.
    pub fn validate(&self) -> Result<[u8; HASH_LEN], WhisperError> {
        let id: [u8; HASH_LEN] = self
            .id
            .as_slice()
            .try_into()
            .map_err(|_| WhisperError::InvalidRequest("id must be 32 bytes"))?;
        if self.from > self.to {
            return Err(WhisperError::InvalidRequest("from > to"));
        }
        if self.limit > MAX_LIST_REQUEST_LIMIT {
            return Err(WhisperError::InvalidRequest("limit above 1000"));
        }
        bloom_from(&self.bloom)?;
        check_cursor(&self.cursor)?;
        Ok(id)
    }
}

/// Code 125 (§10.4): the end of a history request, success or failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestCompletion {
    /// The request id (request envelope hash, or `MessagesRequest.ID`).
    pub request_id: [u8; HASH_LEN],
    /// Hash of the last envelope sent (zero if none).
    pub last_envelope_hash: [u8; HASH_LEN],
    /// Cursor for the next page; empty when the server had no more than `limit`.
    pub cursor: Vec<u8>,
    /// `Some(text)` for the `ERROR=` form.
    pub error: Option<String>,
}

impl RequestCompletion {
    /// A bare RLP byte string: `id ‖ lastHash ‖ cursor` or `"ERROR=" ‖ id ‖ text`.
    pub fn encode(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(2 * HASH_LEN + CURSOR_LEN);
        match &self.error {
            Some(text) => {
                raw.extend_from_slice(ERROR_PREFIX);
                raw.extend_from_slice(&self.request_id);
                raw.extend_from_slice(text.as_bytes());
            }
            None => {
                raw.extend_from_slice(&self.request_id);
                raw.extend_from_slice(&self.last_envelope_hash);
                raw.extend_from_slice(&self.cursor);
            }
        }
        crate::rlp::encode_bytes(&raw)
    }

    /// Go `CreateMailServerEvent`: under 32 bytes → error; `ERROR=` prefix → failure form;
    /// over 100 bytes → error; otherwise id, then the last hash if 32 more bytes follow, then
    /// the cursor if 36 more bytes follow.
    pub fn decode(buf: &[u8]) -> Result<RequestCompletion, WhisperError> {
        let raw = Rlp::new(buf)?.bytes()?;
        if raw.len() < HASH_LEN {
            return Err(WhisperError::InvalidResponse(
                "request-complete shorter than 32",
            ));
        }
        if let Some(rest) = raw.strip_prefix(ERROR_PREFIX) {
            let (id, text) = split_hash(rest)
                .ok_or(WhisperError::InvalidResponse("error response without id"))?;
            return Ok(RequestCompletion {
                request_id: id,
                last_envelope_hash: [0; HASH_LEN],
                cursor: Vec::new(),
                error: Some(String::from_utf8_lossy(text).into_owned()),
            });
        }
        if raw.len() > 2 * HASH_LEN + CURSOR_LEN {
            return Err(WhisperError::InvalidResponse(
                "request-complete longer than 100",
            ));
        }
        let (request_id, rest) =
            split_hash(raw).ok_or(WhisperError::InvalidResponse("request-complete"))?;
        let (last_envelope_hash, rest) = split_hash(rest).unwrap_or(([0; HASH_LEN], &[]));
        let cursor = if rest.len() >= CURSOR_LEN {
            rest.to_vec()
        } else {
            Vec::new()
        };
        Ok(RequestCompletion {
            request_id,
            last_envelope_hash,
            cursor,
            error: None,
        })
    }
}

fn split_hash(b: &[u8]) -> Option<([u8; HASH_LEN], &[u8])> {
    let head = b.get(..HASH_LEN)?;
    let mut h = [0u8; HASH_LEN];
    h.copy_from_slice(head);
    Some((h, b.get(HASH_LEN..).unwrap_or_default()))
}

/// Code 127 body (§10.3): a list of envelopes (batch) or one envelope. Go tries the list
/// first, then a single envelope.
pub fn decode_p2p_messages(payload: &[u8]) -> Result<Vec<Envelope>, WhisperError> {
    if let Ok(list) = super::messages::decode_messages(payload) {
        return Ok(list);
    }
    Ok(vec![Envelope::decode(payload)?])
}

/// One entry of a message response: why an envelope of a batch was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeError {
    /// The envelope.
    pub hash: [u8; HASH_LEN],
    /// [`ENVELOPE_TIME_NOT_SYNCED`] or [`ENVELOPE_OTHER_ERROR`] (2019 values).
    pub code: u64,
    /// Human-readable reason.
    pub description: String,
}

/// Code 12: `[version=1, [batchHash, [[envelopeHash, code, description], ...]]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageResponse {
    /// keccak256 of the acknowledged Messages packet's payload.
    pub batch_hash: [u8; HASH_LEN],
    /// Envelopes that were refused (empty when all were accepted).
    pub errors: Vec<EnvelopeError>,
}

impl MessageResponse {
    /// Encodes the version-1 response.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(48 + 64 * self.errors.len());
        e.list(|e| {
            e.u64(MESSAGE_RESPONSE_VERSION).list(|e| {
                e.bytes(&self.batch_hash).list(|e| {
                    for err in &self.errors {
                        e.list(|e| {
                            e.bytes(&err.hash)
                                .u64(err.code)
                                .bytes(err.description.as_bytes());
                        });
                    }
                });
            });
        });
        e.finish()
    }

    /// Decodes a version-1 response; other versions are [`WhisperError::InvalidResponse`].
    pub fn decode(buf: &[u8]) -> Result<MessageResponse, WhisperError> {
        let item = Rlp::new(buf)?;
        let mut l = item.list()?;
        let version = l.item()?.u64()?;
        if version != MESSAGE_RESPONSE_VERSION {
            return Err(WhisperError::InvalidResponse(
                "unknown message response version",
            ));
        }
        let body = l.item()?;
        l.finish()?;
        let mut b = body.list()?;
        let batch_hash = b.item()?.fixed::<HASH_LEN>()?;
        let errs = b.item()?;
        b.finish()?;
        let mut el = errs.list()?;
        let mut errors = Vec::new();
        while let Some(it) = el.next_item()? {
            let mut f = it.list()?;
            let hash = f.item()?.fixed::<HASH_LEN>()?;
            let code = f.item()?.u64()?;
            let description = String::from_utf8_lossy(f.item()?.bytes()?).into_owned();
            f.finish()?;
            errors.push(EnvelopeError {
                hash,
                code,
                description,
            });
        }
        Ok(MessageResponse { batch_hash, errors })
    }
}

/// Code 11: the 32-byte batch hash as an RLP string.
pub fn encode_batch_ack(batch_hash: &[u8; HASH_LEN]) -> Vec<u8> {
    crate::rlp::encode_bytes(batch_hash)
}

/// Decodes code 11 (exactly 32 bytes).
pub fn decode_batch_ack(buf: &[u8]) -> Result<[u8; HASH_LEN], WhisperError> {
    Ok(Rlp::new(buf)?.fixed::<HASH_LEN>()?)
}

/// The batch hash of a received Messages packet: keccak256 of its raw payload.
pub fn batch_hash(payload: &[u8]) -> [u8; HASH_LEN] {
    keccak256(payload)
}

/// The archive key of an envelope: `sent(4, BE) ‖ hash(32) ‖ topic(4)`.
pub fn archive_key(sent_secs: u32, hash: &[u8; HASH_LEN], topic: Topic) -> [u8; ARCHIVE_KEY_LEN] {
    let mut k = [0u8; ARCHIVE_KEY_LEN];
    k[..4].copy_from_slice(&sent_secs.to_be_bytes());
    k[4..CURSOR_LEN].copy_from_slice(hash);
    k[CURSOR_LEN..].copy_from_slice(&topic.0);
    k
}

#[derive(Clone, Debug)]
struct Archived {
    bloom: Bloom,
    raw: Vec<u8>,
}

/// One page of a history query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPage {
    /// Raw envelope encodings, ascending by (sent time, hash).
    pub envelopes: Vec<Vec<u8>>,
    /// Hash of the last envelope in the page (zero if empty).
    pub last_envelope_hash: [u8; HASH_LEN],
    /// Cursor of the next page: empty unless `limit` was reached.
    pub cursor: Vec<u8>,
}

/// The mailserver's bounded in-memory archive (eviction rule in the module docs).
#[derive(Clone, Debug)]
pub struct Archive {
    entries: BTreeMap<(u32, [u8; HASH_LEN]), Archived>,
    bytes: usize,
    /// Capacity in envelopes.
    pub max_envelopes: usize,
    /// Capacity in raw envelope bytes.
    pub max_bytes: usize,
    evictions: u64,
}

impl Archive {
    /// An empty archive with these bounds.
    pub fn new(max_envelopes: usize, max_bytes: usize) -> Archive {
        Archive {
            entries: BTreeMap::new(),
            bytes: 0,
            max_envelopes,
            max_bytes,
            evictions: 0,
        }
    }

    /// Envelopes held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Raw bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// True if this envelope is held.
    pub fn contains(&self, sent_secs: u32, hash: &[u8; HASH_LEN]) -> bool {
        self.entries.contains_key(&(sent_secs, *hash))
    }

    /// Adds an envelope; false if it was already held or is older than everything a full
    /// archive keeps (then it is not stored).
    pub fn insert(&mut self, env: EnvelopeFields<'_>, hash: [u8; HASH_LEN], raw: Vec<u8>) -> bool {
        let key = (env.sent_secs(), hash);
        if self.entries.contains_key(&key) || raw.len() > self.max_bytes || self.max_envelopes == 0
        {
            return false;
        }
        while self.entries.len() >= self.max_envelopes
            || self.bytes.saturating_add(raw.len()) > self.max_bytes
        {
            match self.entries.first_key_value() {
                Some((oldest, _)) if *oldest < key => {
                    if let Some((_, old)) = self.entries.pop_first() {
                        self.bytes = self.bytes.saturating_sub(old.raw.len());
                        self.evictions += 1;
                    }
                }
                _ => return false,
            }
        }
        self.bytes += raw.len();
        self.entries.insert(
            key,
            Archived {
                bloom: env.bloom(),
                raw,
            },
        );
        true
    }

    /// Decodes and adds a persisted envelope (replay at start).
    pub fn insert_raw(&mut self, raw: &[u8]) -> Result<bool, WhisperError> {
        let view = EnvelopeView::decode(raw)?;
        Ok(self.insert(view.fields(), view.hash(), raw.to_vec()))
    }

    /// One page of envelopes for a request (see the module docs). `limit` must be ≥ 1.
    pub fn query(
        &self,
        lower: u32,
        upper: u32,
        bloom: &Bloom,
        limit: u32,
        cursor: &[u8],
    ) -> QueryPage {
        let mut page = QueryPage {
            envelopes: Vec::new(),
            last_envelope_hash: [0; HASH_LEN],
            cursor: Vec::new(),
        };
        if upper < lower {
            return page;
        }
        let start = match cursor_key(cursor) {
            Some(c) if c >= (lower, [0; HASH_LEN]) => std::ops::Bound::Excluded(c),
            _ => std::ops::Bound::Included((lower, [0; HASH_LEN])),
        };
        let end = std::ops::Bound::Included((upper, [0xff; HASH_LEN]));
        if matches!((start, end), (std::ops::Bound::Excluded(s), std::ops::Bound::Included(e)) if s >= e)
        {
            return page;
        }
        for ((sent, hash), a) in self.entries.range((start, end)) {
            if !bloom_match(Some(bloom), &a.bloom) {
                continue;
            }
            page.envelopes.push(a.raw.clone());
            page.last_envelope_hash = *hash;
            if page.envelopes.len() as u64 >= u64::from(limit.max(1)) {
                let mut c = Vec::with_capacity(CURSOR_LEN);
                c.extend_from_slice(&sent.to_be_bytes());
                c.extend_from_slice(hash);
                page.cursor = c;
                break;
            }
        }
        page
    }
}

fn cursor_key(cursor: &[u8]) -> Option<(u32, [u8; HASH_LEN])> {
    if cursor.len() != CURSOR_LEN {
        return None;
    }
    let sent = u32::from_be_bytes(cursor.get(..4)?.try_into().ok()?);
    let hash: [u8; HASH_LEN] = cursor.get(4..CURSOR_LEN)?.try_into().ok()?;
    Some((sent, hash))
}
