//! Private group chats (status-chat.md §7): the Transit `g5` membership-update record, the
//! per-update signature, and [`GroupState`], the pure fold of signed membership events.
//!
//! Contract:
//! - [`MembershipUpdateMessage::decode`] reads `["~#g5",[chat-id, ["~#list",[update…]],
//!   message-or-null]]` (a plain array of updates is accepted too) with the shared Transit
//!   reader of [`super::transit`]; it is total and returns [`GroupError`]. Unknown event types
//!   are a decode error (status-go's `validateEvent` rejects them too).
//!   [`MembershipUpdateMessage::encode`] writes what status-go v0.36 writes; the status-go test
//!   vector re-encodes byte for byte.
//! - Each update carries one signature over all its events: `Sign(keccak256(utf8(S)))` where
//!   `S` is the compact JSON `[[event-pairs…], chat-id]` built by
//!   [`MembershipUpdate::signing_string`] (events by ascending clock, each event as sorted
//!   `[name, value]` pairs of its non-empty fields, `members` sorted ascending as status-go
//!   does, strings escaped as Go's 2019 `json.Marshal`). The signer is *recovered*, so any
//!   65-byte signature "verifies"; authorisation is what [`GroupState`] checks.
//! - [`GroupState::fold`] applies the union of all known updates in ascending clock order
//!   (ties: author, then event; the same event carried by several updates — status-go re-signs
//!   the whole history into each new update — counts once) with status-go v0.36's
//!   `validateEvent`/`processEvent` rules, quirks included (table at [`GroupState::apply`]), so
//!   that hush computes the membership status-go computes. Invalid events are skipped and
//!   reported, never applied (status-go refuses the whole message instead); a fold with no
//!   valid `chat-created` is an error. [`GroupState::apply`] is the single-event step and
//!   leaves the state untouched when it returns an error.
//! - `chat-created` carries `member` = the admin, written as `~:member` and signed (status-go
//!   `NewChatCreatedEvent`); hush writes it, and folds an empty one (status-react, older hush)
//!   as "the signer is the admin".
//! - Member ids are `"0x" + pubhex` (lowercase, 65-byte uncompressed key), see [`member_id`].
//!   Chat ids are `uuid + "-" + "0x" + pubhex(creator)` (status-go v0.36 `groupChatID`); ids
//!   without the `-` (status-react's older form) are accepted on input since only the suffix
//!   is checked, as status-go and status-react do.

use std::collections::BTreeSet;

use rand_core::{CryptoRng, RngCore};
use secp256k1::{PublicKey, SecretKey};

use super::transit::{decode_top, C4Message, Tv, Writer};
use super::ChatError;
use crate::keccak::keccak256;
use crate::whisper::{recover_signer, sign_recoverable, SIGNATURE_LEN};

/// The record tag of a membership update message.
pub const G5_TAG: &str = "g5";
/// Length of the hex signature string of an update (65 bytes, no `0x`).
pub const SIGNATURE_HEX_LEN: usize = 2 * SIGNATURE_LEN;
/// Length of a member id: `0x` + 130 hex characters.
pub const MEMBER_ID_LEN: usize = 2 + 2 * 65;
/// Default cap on group size: status-react's `max-group-chat-participants` (20 in late 2019,
/// the UI limit; the protocol itself has none). Configurable through [`GroupLimits`].
pub const DEFAULT_MAX_GROUP_MEMBERS: usize = 20;

/// Why a membership message or event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The Transit bytes did not decode.
    #[error(transparent)]
    Decode(#[from] ChatError),
    /// An event whose `type` is not one of the seven 2019 event types.
    #[error("group: unknown event type {0:?}")]
    UnknownEventType(String),
    /// The update has no signature.
    #[error("group: unsigned update")]
    Unsigned,
    /// The signature is not 130 hex characters or does not recover a key.
    #[error("group: bad update signature")]
    BadSignature,
    /// An update for another chat than the one being folded.
    #[error("group: update for chat {got:?}, expected {expected:?}")]
    ChatIdMismatch {
        /// The chat being folded.
        expected: String,
        /// The update's chat id.
        got: String,
    },
    /// The chat id does not end with `0x` + the creator key (or equals it).
    #[error("group: chat id does not end with the creator key")]
    InvalidChatId,
    /// A member string that is not `0x` + 130 lowercase hex of a valid key.
    #[error("group: invalid member id {0:?}")]
    InvalidMember(String),
    /// `chat-created` on a group that already exists.
    #[error("group: chat-created on an existing group")]
    AlreadyCreated,
    /// An event before the group's `chat-created`.
    #[error("group: event before chat-created")]
    NotCreated,
    /// The author must be an admin for this event.
    #[error("group: {0} by a non-admin")]
    NotAdmin(&'static str),
    /// The event names someone who is not a member (or an author who is not one).
    #[error("group: {0} names a non-member")]
    NotMember(&'static str),
    /// The event may only be made by the member it names.
    #[error("group: {0} must be made by the member it names")]
    NotSelf(&'static str),
    /// Only the admin itself can remove an admin from the members (status-go).
    #[error("group: member-removed targets an admin")]
    TargetIsAdmin,
    /// Refused by [`crate::chat::direct::Conversations::leave_group`]: the last admin
    /// leaving would orphan the group (status-go's fold itself allows it).
    #[error("group: the last admin cannot be removed")]
    LastAdmin,
    /// A name change to a blank name.
    #[error("group: blank group name")]
    BlankName,
    /// `members-added` / `admins-added` with no members.
    #[error("group: {0} with no members")]
    NoMembers(&'static str),
    /// The group would exceed [`GroupLimits::max_members`].
    #[error("group: more than {max} members")]
    TooManyMembers {
        /// The configured limit.
        max: usize,
    },
    /// [`GroupState::apply`] given an event older than one already applied; re-fold instead.
    #[error("group: event clock {clock} before last applied {last}")]
    ClockRegression {
        /// The event's clock.
        clock: u64,
        /// The state's last applied clock.
        last: u64,
    },
    /// No valid `chat-created` among the updates.
    #[error("group: no valid chat-created event")]
    NoCreator,
}

/// One membership event (status-chat.md §7 table).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupEventKind {
    /// `chat-created`: first event. `member` is the admin (status-go v0.36
    /// `NewChatCreatedEvent(name, admin, clock)` sets it, writes `~:member` and signs it;
    /// status-go's fold makes *it*, not the signer, the first admin and member). Empty in
    /// status-react's form and in updates written by hush before it followed status-go; the
    /// signer is the admin then.
    ChatCreated {
        /// Initial group name.
        name: String,
        /// The admin's member id, or empty.
        member: String,
    },
    /// `name-changed` (admin only, not blank).
    NameChanged {
        /// New name.
        name: String,
    },
    /// `members-added` (admin only).
    MembersAdded {
        /// Member ids added.
        members: Vec<String>,
    },
    /// `member-joined` (the invited member accepts).
    MemberJoined {
        /// The member (must be the author).
        member: String,
    },
    /// `admins-added` (admin only; targets must be members).
    AdminsAdded {
        /// Member ids made admins.
        members: Vec<String>,
    },
    /// `member-removed` (admin removing a non-admin, or a non-admin leaving).
    MemberRemoved {
        /// The member removed.
        member: String,
    },
    /// `admin-removed` (an admin dropping their own admin rights).
    AdminRemoved {
        /// The admin (must be the author).
        member: String,
    },
}

impl GroupEventKind {
    /// The wire `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            GroupEventKind::ChatCreated { .. } => "chat-created",
            GroupEventKind::NameChanged { .. } => "name-changed",
            GroupEventKind::MembersAdded { .. } => "members-added",
            GroupEventKind::MemberJoined { .. } => "member-joined",
            GroupEventKind::AdminsAdded { .. } => "admins-added",
            GroupEventKind::MemberRemoved { .. } => "member-removed",
            GroupEventKind::AdminRemoved { .. } => "admin-removed",
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            GroupEventKind::ChatCreated { name, .. } | GroupEventKind::NameChanged { name } => {
                Some(name)
            }
            _ => None,
        }
    }

    fn member(&self) -> Option<&str> {
        match self {
            GroupEventKind::ChatCreated { member, .. }
            | GroupEventKind::MemberJoined { member }
            | GroupEventKind::MemberRemoved { member }
            | GroupEventKind::AdminRemoved { member } => Some(member),
            _ => None,
        }
    }

    fn members(&self) -> Option<&[String]> {
        match self {
            GroupEventKind::MembersAdded { members } | GroupEventKind::AdminsAdded { members } => {
                Some(members)
            }
            _ => None,
        }
    }
}

/// An event with its Lamport clock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupEvent {
    /// `clock-value` (status-react clock, status-chat.md §6.2).
    pub clock: u64,
    /// What happened.
    pub kind: GroupEventKind,
}

/// One signed update: events by one author for one chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipUpdate {
    /// `~:chat-id`.
    pub chat_id: String,
    /// `~:events`.
    pub events: Vec<GroupEvent>,
    /// `~:signature`: 130 lowercase hex characters, no `0x`; empty when absent.
    pub signature: String,
}

/// The `g5` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipUpdateMessage {
    /// The group chat id.
    pub chat_id: String,
    /// All updates the sender knows (late joiners rebuild the group from them).
    pub updates: Vec<MembershipUpdate>,
    /// An optional `c4` message carried with the updates.
    pub message: Option<C4Message>,
}

/// An event whose author has been recovered from its update's signature.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SignedEvent {
    /// The event.
    pub event: GroupEvent,
    /// Author's member id (`0x` + pubhex).
    pub author: String,
}

/// Limits applied by the fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupLimits {
    /// Largest number of members a group may reach; additions beyond it are rejected.
    pub max_members: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            max_members: DEFAULT_MAX_GROUP_MEMBERS,
        }
    }
}

/// A member id: `"0x" + lowercase hex of the 65-byte uncompressed key` (status-go
/// `publicKeyToString`).
pub fn member_id(key: &PublicKey) -> String {
    format!("0x{}", hex::encode(key.serialize_uncompressed()))
}

/// Parses a member id; only the canonical lowercase form is accepted, so string comparison of
/// ids equals key comparison.
pub fn parse_member_id(id: &str) -> Result<PublicKey, GroupError> {
    let bad = || GroupError::InvalidMember(id.to_string());
    let hex_part = id.strip_prefix("0x").ok_or_else(bad)?;
    if id.len() != MEMBER_ID_LEN || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let bytes = hex::decode(hex_part).map_err(|_| bad())?;
    if bytes.first() != Some(&4) {
        return Err(bad());
    }
    PublicKey::from_slice(&bytes).map_err(|_| bad())
}

/// Formats 16 random bytes as an RFC 4122 version-4 UUID string (36 characters).
pub fn uuid_v4_string(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A new group chat id as status-go v0.36 `groupChatID` makes it:
/// `uuid.New().String() + "-" + types.EncodeHex(crypto.FromECDSAPub(creator))`.
pub fn new_chat_id(rng: &mut (impl RngCore + CryptoRng), creator: &PublicKey) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    format!("{}-{}", uuid_v4_string(b), member_id(creator))
}

/// True if `chat_id` ends with `creator`'s member id and is not just that id
/// (status-react `valid-chat-id?`, status-go `validateChatID`).
pub fn chat_id_matches_creator(chat_id: &str, creator_id: &str) -> bool {
    chat_id.len() > creator_id.len() && chat_id.ends_with(creator_id)
}

/// Go's 2019 `json.Marshal` for a string: `"` and `\` escaped, `\n` `\r` `\t` short, other
/// control characters as `\u00xx`, and the HTML-safe escapes `<` `>` `&` U+2028 U+2029 as
/// `\u003c` `\u003e` `\u0026` `\u2028` `\u2029` (Go ≥ 1.22 also shortens `\b` `\f`; 2019 Go
/// did not).
pub fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl MembershipUpdate {
    /// The exact string whose keccak256 is signed (module docs; status-chat.md §7).
    pub fn signing_string(&self) -> String {
        signing_string(&self.chat_id, &self.events)
    }

    /// Builds and signs an update: events sorted by clock (stable), `members` lists sorted
    /// ascending, signature over [`Self::signing_string`].
    pub fn sign(chat_id: &str, mut events: Vec<GroupEvent>, key: &SecretKey) -> MembershipUpdate {
        events.sort_by_key(|e| e.clock);
        for e in &mut events {
            if let GroupEventKind::MembersAdded { members }
            | GroupEventKind::AdminsAdded { members } = &mut e.kind
            {
                members.sort();
            }
        }
        let s = signing_string(chat_id, &events);
        let sig = sign_recoverable(key, &keccak256(s.as_bytes()));
        MembershipUpdate {
            chat_id: chat_id.to_string(),
            events,
            signature: hex::encode(sig),
        }
    }

    /// Recovers the update's author from its signature.
    pub fn recover_author(&self) -> Result<PublicKey, GroupError> {
        if self.signature.is_empty() {
            return Err(GroupError::Unsigned);
        }
        let mut sig = [0u8; SIGNATURE_LEN];
        if self.signature.len() != SIGNATURE_HEX_LEN
            || hex::decode_to_slice(&self.signature, &mut sig).is_err()
        {
            return Err(GroupError::BadSignature);
        }
        recover_signer(&sig, &keccak256(self.signing_string().as_bytes()))
            .map_err(|_| GroupError::BadSignature)
    }

    /// The update's events with their recovered author.
    pub fn signed_events(&self) -> Result<Vec<SignedEvent>, GroupError> {
        let author = member_id(&self.recover_author()?);
        Ok(self
            .events
            .iter()
            .map(|e| SignedEvent {
                event: e.clone(),
                author: author.clone(),
            })
            .collect())
    }
}

fn signing_string(chat_id: &str, events: &[GroupEvent]) -> String {
    let mut sorted: Vec<&GroupEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.clock);
    let mut out = String::from("[[");
    for (i, e) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Pairs in ascending field-name order: clock-value, member, members, name, type;
        // zero/empty fields are omitted (status-go `tupleMembershipUpdateEvent`).
        let mut pairs: Vec<String> = Vec::new();
        if e.clock != 0 {
            pairs.push(format!("[\"clock-value\",{}]", e.clock));
        }
        if let Some(m) = e.kind.member().filter(|m| !m.is_empty()) {
            pairs.push(format!("[\"member\",{}]", go_json_string(m)));
        }
        if let Some(ms) = e.kind.members().filter(|ms| !ms.is_empty()) {
            let mut ms: Vec<&String> = ms.iter().collect();
            ms.sort();
            let list: Vec<String> = ms.iter().map(|m| go_json_string(m)).collect();
            pairs.push(format!("[\"members\",[{}]]", list.join(",")));
        }
        if let Some(n) = e.kind.name().filter(|n| !n.is_empty()) {
            pairs.push(format!("[\"name\",{}]", go_json_string(n)));
        }
        pairs.push(format!("[\"type\",\"{}\"]", e.kind.type_name()));
        out.push('[');
        out.push_str(&pairs.join(","));
        out.push(']');
    }
    out.push_str("],");
    out.push_str(&go_json_string(chat_id));
    out.push(']');
    out
}

// ---------------------------------------------------------------------------------------------
// Transit codec

fn field<'a>(pairs: &'a [(Tv, Tv)], key: &str) -> Option<&'a Tv> {
    pairs.iter().find_map(|(k, v)| match k {
        Tv::Keyword(k) | Tv::Str(k) if k == key => Some(v),
        _ => None,
    })
}

fn transit_err(what: &'static str) -> GroupError {
    GroupError::Decode(ChatError::Transit(what))
}

fn str_field(pairs: &[(Tv, Tv)], key: &str, what: &'static str) -> Result<String, GroupError> {
    match field(pairs, key) {
        Some(Tv::Str(s)) => Ok(s.clone()),
        _ => Err(transit_err(what)),
    }
}

/// An optional string field: absent or `null` = empty.
fn opt_str_field(pairs: &[(Tv, Tv)], key: &str, what: &'static str) -> Result<String, GroupError> {
    match field(pairs, key) {
        None | Some(Tv::Null) => Ok(String::new()),
        Some(Tv::Str(s)) => Ok(s.clone()),
        _ => Err(transit_err(what)),
    }
}

/// A Transit list, set or plain array.
fn seq<'a>(v: &'a Tv, what: &'static str) -> Result<&'a [Tv], GroupError> {
    match v {
        Tv::Array(items) => Ok(items),
        Tv::Tagged(tag, rep) if tag == "list" || tag == "set" => match rep.as_ref() {
            Tv::Array(items) => Ok(items),
            _ => Err(transit_err(what)),
        },
        _ => Err(transit_err(what)),
    }
}

fn decode_event(v: &Tv) -> Result<GroupEvent, GroupError> {
    let Tv::Map(pairs) = v else {
        return Err(transit_err("event is not a map"));
    };
    let type_name = match field(pairs, "type") {
        Some(Tv::Str(s) | Tv::Keyword(s)) => s.clone(),
        _ => return Err(transit_err("event type")),
    };
    let clock = match field(pairs, "clock-value") {
        Some(Tv::Int(i)) => u64::try_from(*i).map_err(|_| transit_err("event clock-value"))?,
        _ => return Err(transit_err("event clock-value")),
    };
    // status-go `parseEvent`: name, member and members are optional (absent = empty) but
    // must have the right type when present; which ones an event needs is the fold's concern.
    let name = opt_str_field(pairs, "name", "event name")?;
    let member = opt_str_field(pairs, "member", "event member")?;
    let members = match field(pairs, "members") {
        None | Some(Tv::Null) => Vec::new(),
        Some(v) => seq(v, "event members")?
            .iter()
            .map(|m| match m {
                Tv::Str(s) => Ok(s.clone()),
                _ => Err(transit_err("event member entry")),
            })
            .collect::<Result<_, _>>()?,
    };
    let kind = match type_name.as_str() {
        "chat-created" => GroupEventKind::ChatCreated { name, member },
        "name-changed" => GroupEventKind::NameChanged { name },
        "members-added" => GroupEventKind::MembersAdded { members },
        "member-joined" => GroupEventKind::MemberJoined { member },
        "admins-added" => GroupEventKind::AdminsAdded { members },
        "member-removed" => GroupEventKind::MemberRemoved { member },
        "admin-removed" => GroupEventKind::AdminRemoved { member },
        _ => return Err(GroupError::UnknownEventType(type_name)),
    };
    Ok(GroupEvent { clock, kind })
}

fn decode_update(v: &Tv) -> Result<MembershipUpdate, GroupError> {
    let Tv::Map(pairs) = v else {
        return Err(transit_err("update is not a map"));
    };
    let chat_id = str_field(pairs, "chat-id", "update chat-id")?;
    let events = seq(
        field(pairs, "events").ok_or(transit_err("update events"))?,
        "update events",
    )?
    .iter()
    .map(decode_event)
    .collect::<Result<_, _>>()?;
    let signature = match field(pairs, "signature") {
        None | Some(Tv::Null) => String::new(),
        Some(Tv::Str(s)) => s.clone(),
        Some(_) => return Err(transit_err("update signature")),
    };
    Ok(MembershipUpdate {
        chat_id,
        events,
        signature,
    })
}

impl MembershipUpdateMessage {
    /// Decodes Transit bytes holding one `g5` record (total).
    pub fn decode(bytes: &[u8]) -> Result<MembershipUpdateMessage, GroupError> {
        MembershipUpdateMessage::from_tv(decode_top(bytes)?)
    }

    /// Reads a `g5` record from an already decoded Transit value.
    pub(crate) fn from_tv(tv: Tv) -> Result<MembershipUpdateMessage, GroupError> {
        let Tv::Tagged(tag, rep) = tv else {
            return Err(transit_err("not a tagged value"));
        };
        if tag != G5_TAG {
            return Err(GroupError::Decode(ChatError::UnexpectedTag(tag)));
        }
        let Tv::Array(items) = *rep else {
            return Err(transit_err("g5 rep is not an array"));
        };
        let mut items = items.into_iter();
        let chat_id = match items.next() {
            Some(Tv::Str(s)) => s,
            _ => return Err(transit_err("g5 chat-id")),
        };
        let updates = match items.next() {
            Some(v) => seq(&v, "g5 updates")?
                .iter()
                .map(decode_update)
                .collect::<Result<_, _>>()?,
            None => return Err(transit_err("g5 updates")),
        };
        let message = match items.next() {
            None | Some(Tv::Null) => None,
            Some(v) => Some(C4Message::from_tv(v)?),
        };
        Ok(MembershipUpdateMessage {
            chat_id,
            updates,
            message,
        })
    }

    /// Encodes as compact Transit JSON (status-go v0.36 layout; see module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        let mut out = String::with_capacity(256 + 512 * self.updates.len());
        out.push('[');
        w.raw_str(&mut out, &format!("~#{G5_TAG}"), false);
        out.push_str(",[");
        w.string(&mut out, &self.chat_id);
        out.push_str(",[");
        w.raw_str(&mut out, "~#list", false);
        out.push_str(",[");
        for (i, u) in self.updates.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_update(&mut w, &mut out, u);
        }
        out.push_str("]],");
        match &self.message {
            Some(m) => m.write_to(&mut w, &mut out),
            None => out.push_str("null"),
        }
        out.push_str("]]");
        out.into_bytes()
    }
}

fn write_key(w: &mut Writer, out: &mut String, key: &str) {
    out.push(',');
    w.raw_str(out, &format!("~:{key}"), true);
    out.push(',');
}

fn write_update(w: &mut Writer, out: &mut String, u: &MembershipUpdate) {
    out.push_str("[\"^ \"");
    write_key(w, out, "chat-id");
    w.string(out, &u.chat_id);
    write_key(w, out, "events");
    out.push('[');
    for (i, e) in u.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Key order as in the status-go test vector: type, name, clock-value, member(s).
        out.push_str("[\"^ \"");
        write_key(w, out, "type");
        w.string(out, e.kind.type_name());
        // Only non-empty fields, as status-go's encoder (and the signing string) has it.
        if let Some(n) = e.kind.name().filter(|n| !n.is_empty()) {
            write_key(w, out, "name");
            w.string(out, n);
        }
        write_key(w, out, "clock-value");
        w.int(out, e.clock);
        if let Some(m) = e.kind.member().filter(|m| !m.is_empty()) {
            write_key(w, out, "member");
            w.string(out, m);
        }
        if let Some(ms) = e.kind.members().filter(|ms| !ms.is_empty()) {
            write_key(w, out, "members");
            out.push('[');
            w.raw_str(out, "~#set", false);
            out.push_str(",[");
            for (j, m) in ms.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                w.string(out, m);
            }
            out.push_str("]]");
        }
        out.push(']');
    }
    out.push(']');
    if !u.signature.is_empty() {
        write_key(w, out, "signature");
        w.string(out, &u.signature);
    }
    out.push(']');
}

// ---------------------------------------------------------------------------------------------
// The fold

/// An event the fold refused, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedEvent {
    /// The event.
    pub event: GroupEvent,
    /// Its author, when the signature recovered one.
    pub author: Option<String>,
    /// Why it was refused.
    pub error: GroupError,
}

/// Result of [`GroupState::fold`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded {
    /// The resulting group.
    pub state: GroupState,
    /// Events skipped, in the order they were considered.
    pub rejected: Vec<RejectedEvent>,
}

/// Membership of one group: the pure fold of its signed events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState {
    chat_id: String,
    limits: GroupLimits,
    name: String,
    creator: Option<String>,
    members: BTreeSet<String>,
    admins: BTreeSet<String>,
    joined: BTreeSet<String>,
    join_events: BTreeSet<String>,
    last_clock: u64,
}

impl GroupState {
    /// An empty (not yet created) group with id `chat_id`.
    pub fn new(chat_id: &str, limits: GroupLimits) -> GroupState {
        GroupState {
            chat_id: chat_id.to_string(),
            limits,
            name: String::new(),
            creator: None,
            members: BTreeSet::new(),
            admins: BTreeSet::new(),
            joined: BTreeSet::new(),
            join_events: BTreeSet::new(),
            last_clock: 0,
        }
    }

    /// Folds the union of `updates` (identical updates counted once): verifies each
    /// update's signature and chat id, then applies every event in ascending clock order
    /// (ties: author, then event). Invalid events are skipped and listed in
    /// [`Folded::rejected`]; the result is an error only when no `chat-created` was valid.
    pub fn fold(
        chat_id: &str,
        updates: &[MembershipUpdate],
        limits: GroupLimits,
    ) -> Result<Folded, GroupError> {
        let mut rejected = Vec::new();
        let mut events: BTreeSet<(u64, String, GroupEvent)> = BTreeSet::new();
        for (i, u) in updates.iter().enumerate() {
            // Deduplicate whole updates, not signatures: a tampered copy reusing a genuine
            // signature must not shadow the genuine update.
            if updates.get(..i).is_some_and(|before| before.contains(u)) {
                continue;
            }
            let verdict = if u.chat_id != chat_id {
                Err(GroupError::ChatIdMismatch {
                    expected: chat_id.to_string(),
                    got: u.chat_id.clone(),
                })
            } else {
                u.signed_events()
            };
            match verdict {
                Ok(signed) => {
                    for s in signed {
                        events.insert((s.event.clock, s.author, s.event));
                    }
                }
                Err(error) => rejected.extend(u.events.iter().map(|e| RejectedEvent {
                    event: e.clone(),
                    author: None,
                    error: error.clone(),
                })),
            }
        }
        let mut state = GroupState::new(chat_id, limits);
        for (_, author, event) in events {
            let signed = SignedEvent { event, author };
            if let Err(error) = state.apply(&signed) {
                rejected.push(RejectedEvent {
                    event: signed.event,
                    author: Some(signed.author),
                    error,
                });
            }
        }
        if state.creator.is_none() {
            return Err(GroupError::NoCreator);
        }
        Ok(Folded { state, rejected })
    }

    /// Applies one signed event with status-go v0.36's rules (`Group.validateEvent` and
    /// `processEvent` in `protocol/v1/membership_update_message.go`), quirks included, so that
    /// hush and status-go compute the same membership from the same events:
    ///
    /// | type | valid when | effect |
    /// |---|---|---|
    /// | `chat-created` | no admins and no members (the first time: chat id ends with the author) | name; `member` (else the author) becomes admin and member |
    /// | `name-changed` | author is admin, name not empty | name |
    /// | `members-added` | author is admin (empty list: a no-op) | members added (up to [`GroupLimits::max_members`]) |
    /// | `member-joined` | author is a member and names itself | joined |
    /// | `member-removed` | author names itself, or author is admin and the target is not | target leaves the members (an admin keeps its admin right) |
    /// | `admins-added` | author is admin and at least one target is a member | every target becomes admin |
    /// | `admin-removed` | author is admin and names itself | admin right dropped (the last admin may go) |
    ///
    /// On error the state is unchanged. Events must come in ascending clock order
    /// ([`GroupError::ClockRegression`] otherwise: keep all updates and [`GroupState::fold`]
    /// again).
    pub fn apply(&mut self, ev: &SignedEvent) -> Result<(), GroupError> {
        let clock = ev.event.clock;
        if clock < self.last_clock {
            return Err(GroupError::ClockRegression {
                clock,
                last: self.last_clock,
            });
        }
        let author = ev.author.as_str();
        parse_member_id(author)?;
        let kind = &ev.event.kind;
        let t = kind.type_name();
        if self.creator.is_none() && !matches!(kind, GroupEventKind::ChatCreated { .. }) {
            // status-go: the first event must be `chat-created` (`validateChatID`).
            return Err(GroupError::NotCreated);
        }
        let is_admin = self.admins.contains(author);
        match kind {
            GroupEventKind::ChatCreated { name, member } => {
                if !self.admins.is_empty() || !self.members.is_empty() {
                    return Err(GroupError::AlreadyCreated);
                }
                // status-go checks the chat id against the author of the first event only.
                if self.creator.is_none() && !chat_id_matches_creator(&self.chat_id, author) {
                    return Err(GroupError::InvalidChatId);
                }
                let admin = if member.is_empty() { author } else { member };
                self.name = name.clone();
                if self.creator.is_none() {
                    self.creator = Some(author.to_string());
                }
                self.members.insert(admin.to_string());
                self.admins.insert(admin.to_string());
                self.joined.insert(admin.to_string());
            }
            GroupEventKind::NameChanged { name } => {
                if !is_admin {
                    return Err(GroupError::NotAdmin(t));
                }
                if name.is_empty() {
                    return Err(GroupError::BlankName);
                }
                self.name = name.clone();
            }
            GroupEventKind::MembersAdded { members } => {
                if !is_admin {
                    return Err(GroupError::NotAdmin(t));
                }
                let new: BTreeSet<&String> = members
                    .iter()
                    .filter(|m| !self.members.contains(*m))
                    .collect();
                if self.members.len() + new.len() > self.limits.max_members {
                    return Err(GroupError::TooManyMembers {
                        max: self.limits.max_members,
                    });
                }
                self.members.extend(new.into_iter().cloned());
            }
            GroupEventKind::MemberJoined { member } => {
                if member != author {
                    return Err(GroupError::NotSelf(t));
                }
                if !self.members.contains(member) {
                    return Err(GroupError::NotMember(t));
                }
                self.joined.insert(member.clone());
                self.join_events.insert(member.clone());
            }
            GroupEventKind::AdminsAdded { members } => {
                if !is_admin {
                    return Err(GroupError::NotAdmin(t));
                }
                if members.is_empty() {
                    return Err(GroupError::NoMembers(t));
                }
                // status-go's `stringSliceSubset` is true when ANY target is a member, and
                // `processEvent` then makes every target an admin.
                if !members.iter().any(|m| self.members.contains(m)) {
                    return Err(GroupError::NotMember(t));
                }
                self.admins.extend(members.iter().cloned());
            }
            GroupEventKind::MemberRemoved { member } => {
                if member != author {
                    if !is_admin {
                        return Err(GroupError::NotAdmin(t));
                    }
                    if self.admins.contains(member) {
                        return Err(GroupError::TargetIsAdmin);
                    }
                }
                // status-go removes from the members only: an admin who leaves keeps its
                // admin right (and may act, or add itself back).
                self.members.remove(member);
                self.joined.remove(member);
            }
            GroupEventKind::AdminRemoved { member } => {
                if !is_admin {
                    return Err(GroupError::NotAdmin(t));
                }
                if member != author {
                    return Err(GroupError::NotSelf(t));
                }
                self.admins.remove(member);
            }
        }
        self.last_clock = clock;
        Ok(())
    }

    /// The chat id.
    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }
    /// Current name (empty before creation).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The creator's member id, once `chat-created` was applied.
    pub fn creator(&self) -> Option<&str> {
        self.creator.as_deref()
    }
    /// Current members (sorted member ids), including admins.
    pub fn members(&self) -> &BTreeSet<String> {
        &self.members
    }
    /// Current admins as status-go's `Group.Admins()` keeps them: an admin who left the
    /// members, or was made admin without being a member, is still listed (and may still act).
    pub fn admins(&self) -> &BTreeSet<String> {
        &self.admins
    }
    /// Members who are admins (status-go's `Chat.Members[i].Admin` view).
    pub fn admin_members(&self) -> BTreeSet<String> {
        self.admins.intersection(&self.members).cloned().collect()
    }
    /// Members who have accepted (`member-joined`, and the creator).
    pub fn joined(&self) -> &BTreeSet<String> {
        &self.joined
    }
    /// Authors of a valid `member-joined` event, ever (status-go 4c0d8de `Group.Joined()`:
    /// that version delivers a group message only if its sender and its receiver are members
    /// listed here — the creator too, so hush's creator joins explicitly).
    pub fn join_events(&self) -> &BTreeSet<String> {
        &self.join_events
    }
    /// True if `id` is a member.
    pub fn is_member(&self, id: &str) -> bool {
        self.members.contains(id)
    }
    /// True if `id` is an admin.
    pub fn is_admin(&self, id: &str) -> bool {
        self.admins.contains(id)
    }
    /// Clock of the last applied event (0 before any).
    pub fn last_clock(&self) -> u64 {
        self.last_clock
    }
    /// The limits in force.
    pub fn limits(&self) -> GroupLimits {
        self.limits
    }
}

#[cfg(test)]
pub(crate) mod tests;
