//! [`Record`]: the durable changes of [`super::Conversations`] and their byte encoding.
//!
//! Contract: `Record::decode(&r.encode()) == Ok(r)`; decoding is total (any bytes give a
//! record or a [`RecordError`]). Layout (hush's own format): an RLP list whose first item is a
//! tag, then the fields:
//! - 0 `[0, sub, ...]` security-layer [`Persist`]: sub 0 prekey (prost bytes), 1 prekey
//!   deleted `[version]`, 2 installation (prost bytes), 3 installation deleted `[identity,
//!   installation id]`, 4 session (prost bytes), 5 session deleted `[identity, installation id,
//!   bundle id, ephemeral]`
//! - 1 `[1, mvds record bytes]` ([`PersistRecord::encode`])
//! - 2 `[2, group(bool), chat, from(65), text, clock, timestamp_ms, message_id(32)]`
//! - 3 `[3, chat id, g5 bytes]` all known membership updates of a group
//! - 4 `[4, peer(65), installation id]` negotiated-secret progress ("" = we listen only)
//! - 5 `[5, peer(65)]` a contact (we listen to its contact code)
//! - 6 `[6, id(32), [to(65)...], plaintext]` an outgoing message not yet posted
//! - 7 `[7, id(32)]` that message was handed to the transport
//! - 8 `[8, at_ms]` our contact code was published
//! - 9 `[9, [record...]]` an atomic batch of records (not nested)
//! - 10 `[10, kind, chat, setting, observed]` a chat's payload form ([`ChatFormat`]): kind 0
//!   public, 1 direct, 2 group; setting 0 none, 1 transit, 2 protobuf, 3 auto; observed 0
//!   none, 1 transit, 2 protobuf

use prost::Message as _;
use secp256k1::PublicKey;

use crate::chat::app::PayloadFormat;
use crate::chat::format::{ChatFormat, ChatKind, FormatSetting};
use crate::chat::service::ChatMessage;
use crate::mvds::PersistRecord;
use crate::rlp::{Encoder, Rlp, RlpError, RlpList};
use crate::security::{InstallationRecord, OwnPreKeyRecord, Persist, SessionKey, SessionRecord};

const TAG_SECURITY: u64 = 0;
const TAG_MVDS: u64 = 1;
const TAG_MESSAGE: u64 = 2;
const TAG_GROUP: u64 = 3;
const TAG_NEGOTIATED: u64 = 4;
const TAG_CONTACT: u64 = 5;
const TAG_OUTGOING: u64 = 6;
const TAG_POSTED: u64 = 7;
const TAG_CONTACT_CODE: u64 = 8;
const TAG_BATCH: u64 = 9;
const TAG_CHAT_FORMAT: u64 = 10;

const SEC_PREKEY: u64 = 0;
const SEC_PREKEY_DELETED: u64 = 1;
const SEC_INSTALLATION: u64 = 2;
const SEC_INSTALLATION_DELETED: u64 = 3;
const SEC_SESSION: u64 = 4;
const SEC_SESSION_DELETED: u64 = 5;

/// A persisted record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not the RLP layout of the module docs.
    #[error("record: malformed rlp: {0}")]
    Rlp(String),
    /// A tag this version does not know.
    #[error("record: unknown tag {0}")]
    UnknownTag(u64),
    /// A field with an invalid value (key, protobuf, nested record).
    #[error("record: bad field: {0}")]
    BadField(&'static str),
}

impl From<RlpError> for RecordError {
    fn from(e: RlpError) -> Self {
        RecordError::Rlp(e.to_string())
    }
}

/// A message the node accepted (received and delivered, or sent by us): its history entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// `true` for a private-group message (`message.chat` is the group id), `false` for 1:1
    /// (`message.chat` is `"0x" + pubhex` of the other party).
    pub group: bool,
    /// The message.
    pub message: ChatMessage,
}

/// One durable change of [`super::Conversations`]. Commit in emission order; replay through
/// [`super::Conversations::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A security-layer change (sessions, prekeys, installations).
    Security(Persist),
    /// An MVDS change.
    Mvds(PersistRecord),
    /// An accepted message (also the chat history).
    Message(StoredMessage),
    /// The full set of known membership updates of a group (upsert by chat id), encoded as a
    /// `g5` record without message.
    Group {
        /// Group chat id.
        chat_id: String,
        /// `MembershipUpdateMessage::encode` bytes.
        g5: Vec<u8>,
    },
    /// Negotiated-topic progress with `peer`: we listen on the topic; a non-empty
    /// `installation_id` has sent us a direct message with the secret (status-chat.md §2).
    Negotiated {
        /// The other identity.
        peer: PublicKey,
        /// Installation that has spoken, or empty.
        installation_id: String,
    },
    /// A contact: we listen to its contact-code topic.
    Contact(PublicKey),
    /// An outgoing message (plaintext before encryption) not yet handed to the transport;
    /// re-encrypted and posted again after a restart (receivers dedup by message id).
    Outgoing {
        /// Status message id.
        id: [u8; 32],
        /// Recipients.
        to: Vec<PublicKey>,
        /// Bytes the security layer encrypts.
        plaintext: Vec<u8>,
    },
    /// The outgoing message `id` was posted.
    Posted {
        /// Its id.
        id: [u8; 32],
    },
    /// Our contact code was published at this time.
    ContactCodePublished {
        /// Unix ms.
        at_ms: u64,
    },
    /// What is known of a chat's payload form (upsert by kind and chat).
    ChatFormat(ChatFormat),
    /// Records of one state change, to be committed atomically (one transaction): a crash
    /// never leaves half of a change (e.g. a history entry without its outbox entry). Never
    /// nested.
    Batch(Vec<Record>),
}

fn key65(r: Rlp<'_>) -> Result<PublicKey, RecordError> {
    let b = r.fixed::<65>()?;
    PublicKey::from_slice(&b).map_err(|_| RecordError::BadField("public key"))
}

fn string(r: Rlp<'_>) -> Result<String, RecordError> {
    String::from_utf8(r.bytes()?.to_vec()).map_err(|_| RecordError::BadField("utf-8"))
}

fn next<'a>(l: &mut RlpList<'a>) -> Result<Rlp<'a>, RecordError> {
    Ok(l.item()?)
}

impl Record {
    /// Encodes the record (layout in the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.list(|e| match self {
            Record::Security(p) => {
                e.u64(TAG_SECURITY);
                match p {
                    Persist::OwnPreKey(r) => {
                        e.u64(SEC_PREKEY).bytes(&r.encode_to_vec());
                    }
                    Persist::OwnPreKeyDeleted { version } => {
                        e.u64(SEC_PREKEY_DELETED).u64(u64::from(*version));
                    }
                    Persist::Installation(r) => {
                        e.u64(SEC_INSTALLATION).bytes(&r.encode_to_vec());
                    }
                    Persist::InstallationDeleted {
                        identity,
                        installation_id,
                    } => {
                        e.u64(SEC_INSTALLATION_DELETED)
                            .bytes(identity)
                            .bytes(installation_id.as_bytes());
                    }
                    Persist::Session(r) => {
                        e.u64(SEC_SESSION).bytes(&r.encode_to_vec());
                    }
                    Persist::SessionDeleted(k) => {
                        e.u64(SEC_SESSION_DELETED)
                            .bytes(&k.identity)
                            .bytes(k.installation_id.as_bytes())
                            .bytes(&k.bundle_id)
                            .bytes(&k.ephemeral);
                    }
                }
            }
            Record::Mvds(r) => {
                e.u64(TAG_MVDS).bytes(&r.encode());
            }
            Record::Message(m) => {
                e.u64(TAG_MESSAGE)
                    .bool(m.group)
                    .bytes(m.message.chat.as_bytes())
                    .bytes(&m.message.from)
                    .bytes(m.message.text.as_bytes())
                    .u64(m.message.clock)
                    .u64(m.message.timestamp_ms)
                    .bytes(&m.message.message_id);
            }
            Record::Group { chat_id, g5 } => {
                e.u64(TAG_GROUP).bytes(chat_id.as_bytes()).bytes(g5);
            }
            Record::Negotiated {
                peer,
                installation_id,
            } => {
                e.u64(TAG_NEGOTIATED)
                    .bytes(&peer.serialize_uncompressed())
                    .bytes(installation_id.as_bytes());
            }
            Record::Contact(k) => {
                e.u64(TAG_CONTACT).bytes(&k.serialize_uncompressed());
            }
            Record::Outgoing { id, to, plaintext } => {
                e.u64(TAG_OUTGOING).bytes(id);
                e.list(|e| {
                    for k in to {
                        e.bytes(&k.serialize_uncompressed());
                    }
                });
                e.bytes(plaintext);
            }
            Record::Posted { id } => {
                e.u64(TAG_POSTED).bytes(id);
            }
            Record::ContactCodePublished { at_ms } => {
                e.u64(TAG_CONTACT_CODE).u64(*at_ms);
            }
            Record::ChatFormat(f) => {
                let setting = match f.setting {
                    None => 0,
                    Some(FormatSetting::Transit) => 1,
                    Some(FormatSetting::Protobuf) => 2,
                    Some(FormatSetting::Auto) => 3,
                };
                let observed = match f.observed {
                    None => 0,
                    Some(PayloadFormat::Transit) => 1,
                    Some(PayloadFormat::Protobuf) => 2,
                };
                e.u64(TAG_CHAT_FORMAT)
                    .u64(u64::from(f.kind.to_u8()))
                    .bytes(f.chat.as_bytes())
                    .u64(setting)
                    .u64(observed);
            }
            Record::Batch(records) => {
                e.u64(TAG_BATCH);
                e.list(|e| {
                    for r in records {
                        e.raw(&r.encode());
                    }
                });
            }
        });
        e.finish()
    }

    /// Decodes a record written by [`Record::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        Self::decode_item(Rlp::new(bytes)?, true)
    }

    /// The records of this one, batches flattened.
    pub fn flatten(self) -> Vec<Record> {
        match self {
            Record::Batch(v) => v,
            other => vec![other],
        }
    }

    fn decode_item(rlp: Rlp<'_>, allow_batch: bool) -> Result<Record, RecordError> {
        let mut l = rlp.list()?;
        let tag = next(&mut l)?.u64()?;
        let record = match tag {
            TAG_SECURITY => Record::Security(decode_security(&mut l)?),
            TAG_MVDS => Record::Mvds(
                PersistRecord::decode(next(&mut l)?.bytes()?)
                    .map_err(|_| RecordError::BadField("mvds record"))?,
            ),
            TAG_MESSAGE => {
                let group = next(&mut l)?.bool()?;
                let chat = string(next(&mut l)?)?;
                let from = next(&mut l)?.fixed::<65>()?;
                let text = string(next(&mut l)?)?;
                let clock = next(&mut l)?.u64()?;
                let timestamp_ms = next(&mut l)?.u64()?;
                let message_id = next(&mut l)?.fixed::<32>()?;
                Record::Message(StoredMessage {
                    group,
                    message: ChatMessage {
                        chat,
                        from,
                        text,
                        clock,
                        timestamp_ms,
                        message_id,
                    },
                })
            }
            TAG_GROUP => Record::Group {
                chat_id: string(next(&mut l)?)?,
                g5: next(&mut l)?.bytes()?.to_vec(),
            },
            TAG_NEGOTIATED => Record::Negotiated {
                peer: key65(next(&mut l)?)?,
                installation_id: string(next(&mut l)?)?,
            },
            TAG_CONTACT => Record::Contact(key65(next(&mut l)?)?),
            TAG_OUTGOING => {
                let id = next(&mut l)?.fixed::<32>()?;
                let mut list = next(&mut l)?.list()?;
                let mut to = Vec::new();
                while let Some(k) = list.next_item()? {
                    to.push(key65(k)?);
                }
                let plaintext = next(&mut l)?.bytes()?.to_vec();
                Record::Outgoing { id, to, plaintext }
            }
            TAG_POSTED => Record::Posted {
                id: next(&mut l)?.fixed::<32>()?,
            },
            TAG_CONTACT_CODE => Record::ContactCodePublished {
                at_ms: next(&mut l)?.u64()?,
            },
            TAG_CHAT_FORMAT => {
                let kind = u8::try_from(next(&mut l)?.u64()?)
                    .ok()
                    .and_then(ChatKind::from_u8)
                    .ok_or(RecordError::BadField("chat kind"))?;
                let chat = string(next(&mut l)?)?;
                let setting = match next(&mut l)?.u64()? {
                    0 => None,
                    1 => Some(FormatSetting::Transit),
                    2 => Some(FormatSetting::Protobuf),
                    3 => Some(FormatSetting::Auto),
                    _ => return Err(RecordError::BadField("format setting")),
                };
                let observed = match next(&mut l)?.u64()? {
                    0 => None,
                    1 => Some(PayloadFormat::Transit),
                    2 => Some(PayloadFormat::Protobuf),
                    _ => return Err(RecordError::BadField("observed format")),
                };
                Record::ChatFormat(ChatFormat {
                    kind,
                    chat,
                    setting,
                    observed,
                })
            }
            TAG_BATCH if allow_batch => {
                let mut list = next(&mut l)?.list()?;
                let mut v = Vec::new();
                while let Some(item) = list.next_item()? {
                    v.push(Self::decode_item(item, false)?);
                }
                Record::Batch(v)
            }
            other => return Err(RecordError::UnknownTag(other)),
        };
        l.finish()?;
        Ok(record)
    }
}

fn decode_security(l: &mut RlpList<'_>) -> Result<Persist, RecordError> {
    let sub = next(l)?.u64()?;
    let proto = |what| RecordError::BadField(what);
    Ok(match sub {
        SEC_PREKEY => Persist::OwnPreKey(
            OwnPreKeyRecord::decode(next(l)?.bytes()?).map_err(|_| proto("prekey protobuf"))?,
        ),
        SEC_PREKEY_DELETED => Persist::OwnPreKeyDeleted {
            version: next(l)?.u32()?,
        },
        SEC_INSTALLATION => Persist::Installation(
            InstallationRecord::decode(next(l)?.bytes()?)
                .map_err(|_| proto("installation protobuf"))?,
        ),
        SEC_INSTALLATION_DELETED => Persist::InstallationDeleted {
            identity: next(l)?.bytes()?.to_vec(),
            installation_id: string(next(l)?)?,
        },
        SEC_SESSION => Persist::Session(Box::new(
            SessionRecord::decode(next(l)?.bytes()?).map_err(|_| proto("session protobuf"))?,
        )),
        SEC_SESSION_DELETED => Persist::SessionDeleted(SessionKey {
            identity: next(l)?.bytes()?.to_vec(),
            installation_id: string(next(l)?)?,
            bundle_id: next(l)?.bytes()?.to_vec(),
            ephemeral: next(l)?.bytes()?.to_vec(),
        }),
        _ => return Err(RecordError::BadField("security record kind")),
    })
}
