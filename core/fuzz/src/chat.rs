//! Entry points of the chat-layer fuzz targets (`chat_app`, `group_fold`): the application
//! payload decoder of both eras and what consumes it (public chats, 1:1/group conversations,
//! the group fold). Every entry point must never panic; the structured modes also check an
//! oracle (a valid payload decodes to what was encoded).

use std::sync::OnceLock;

use hush_core::chat::app::{
    decode_app, encode_membership, encode_message, AppRecord, PayloadFormat,
};
use hush_core::chat::direct::{Conversations, ConversationsConfig, Via};
use hush_core::chat::group::{
    GroupEvent, GroupEventKind, GroupLimits, GroupState, MembershipUpdate, MembershipUpdateMessage,
};
use hush_core::chat::proto::{ApplicationMetadataMessage, ChatMessage};
use hush_core::chat::service::{ChatConfig, PublicChats};
use hush_core::chat::{C4Content, C4Message, MessageType};
use hush_core::ecies::{public_key, random_secret_key};
use hush_core::rng::{rng_from_seed, seed_from_u64};
use hush_core::Time;
use prost::Message as _;

const T0: Time = Time(1_575_072_060_000);
const CHAT: &str = "fuzz";

struct Keys {
    author: secp256k1::SecretKey,
    receiver: secp256k1::SecretKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rng_from_seed(seed_from_u64(0xc4a7));
        Keys {
            author: random_secret_key(&mut rng),
            receiver: random_secret_key(&mut rng),
        }
    })
}

fn message(text: &str, message_type: MessageType) -> C4Message {
    C4Message {
        text: text.into(),
        content_type: "text/plain".into(),
        message_type,
        clock: 157_507_206_000_001,
        timestamp_ms: T0.as_millis(),
        content: C4Content {
            chat_id: CHAT.into(),
            text: text.into(),
            ..Default::default()
        },
    }
}

/// Runs `bytes` through every consumer of application payloads.
fn consume(bytes: &[u8]) {
    let k = keys();
    let author = public_key(&k.author);
    let _ = decode_app(bytes, &author);
    let _ = ChatMessage::decode(bytes);
    let _ = ApplicationMetadataMessage::decode(bytes);
    let _ = C4Message::decode(bytes);
    if let Ok(g5) = MembershipUpdateMessage::decode(bytes) {
        let _ = GroupState::fold(&g5.chat_id, &g5.updates, GroupLimits::default());
    }
    let mut chats = PublicChats::new(ChatConfig::default(), k.receiver);
    let _ = chats.join(CHAT);
    let _ = chats.receive_payload(T0, CHAT, &author, bytes);
    let mut c = Conversations::new(
        ConversationsConfig {
            publish_contact_code: false,
            ..Default::default()
        },
        k.receiver,
        "fuzz-1",
        seed_from_u64(1),
        T0,
    )
    .expect("conversations");
    c.handle_incoming(T0, &author, bytes, Via::Partitioned);
    while c.poll_action().is_some() {}
}

/// `chat_app`: the first byte picks raw input or a valid payload of one form (Transit, the
/// v0.36 wrapper, protobuf, a g5 in either era) whose text is the rest, mutated at the
/// position and value the next bytes give.
pub fn chat_app(data: &[u8]) {
    consume(data);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = keys();
    let text = String::from_utf8_lossy(rest.get(2..).unwrap_or_default()).into_owned();
    let m = message(&text, MessageType::PublicGroupUserMessage);
    let valid = match mode % 5 {
        0 => encode_message(PayloadFormat::Transit, &m, &k.author, false),
        1 => encode_message(PayloadFormat::Transit, &m, &k.author, true),
        2 => encode_message(PayloadFormat::Protobuf, &m, &k.author, false),
        n => {
            let g5 = MembershipUpdateMessage {
                chat_id: text.clone(),
                updates: vec![MembershipUpdate::sign(
                    &text,
                    vec![GroupEvent {
                        clock: 1,
                        kind: GroupEventKind::ChatCreated {
                            name: text.clone(),
                            member: text.clone(),
                        },
                    }],
                    &k.author,
                )],
                message: None,
            };
            let format = if n == 3 {
                PayloadFormat::Transit
            } else {
                PayloadFormat::Protobuf
            };
            encode_membership(format, &g5, &k.author, false)
        }
    };
    // Oracle: the unmutated payload decodes to its author (the wrapper signer, or for bare
    // Transit the Whisper signer, which is the author here too).
    let app = decode_app(&valid, &public_key(&k.author)).expect("valid payload decodes");
    assert_eq!(app.author, public_key(&k.author));
    if mode % 5 < 3 && text != hush_core::chat::app::GO_TRANSIT_PANIC_TEXT {
        assert_eq!(app.record, AppRecord::Message(m));
    }
    let mut mutated = valid.clone();
    if let (Some(&pos), Some(&byte)) = (rest.first(), rest.get(1)) {
        if !mutated.is_empty() {
            let i = usize::from(pos) * mutated.len() / 256;
            mutated[i] = byte;
        }
    }
    consume(&mutated);
    consume(&valid[..valid.len() * usize::from(mode) / 256]);
}

/// `group_fold`: bytes become a sequence of signed events by four keys (3 bytes each:
/// author, kind, target), folded; the fold must not panic and must keep its invariants.
pub fn group_fold(data: &[u8]) {
    static KEYS4: OnceLock<Vec<secp256k1::SecretKey>> = OnceLock::new();
    let keys = KEYS4.get_or_init(|| {
        let mut rng = rng_from_seed(seed_from_u64(0x6f1d));
        (0..4).map(|_| random_secret_key(&mut rng)).collect()
    });
    let ids: Vec<String> = keys
        .iter()
        .map(|k| hush_core::chat::group::member_id(&public_key(k)))
        .collect();
    let chat = format!("00000000-0000-4000-8000-000000000000{}", ids[0]);
    let mut updates = Vec::new();
    for (i, op) in data.chunks(3).take(64).enumerate() {
        let [a, kind, t] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        let (author, target) = (usize::from(a % 4), ids[usize::from(t % 4)].clone());
        let kind = match kind % 8 {
            0 => GroupEventKind::ChatCreated {
                name: "g".into(),
                member: target,
            },
            1 => GroupEventKind::NameChanged {
                name: if t & 4 == 0 {
                    "n".into()
                } else {
                    String::new()
                },
            },
            2 => GroupEventKind::MembersAdded {
                members: vec![target],
            },
            3 => GroupEventKind::MemberJoined { member: target },
            4 => GroupEventKind::AdminsAdded {
                members: vec![target],
            },
            5 => GroupEventKind::MemberRemoved { member: target },
            6 => GroupEventKind::AdminRemoved { member: target },
            _ => GroupEventKind::MembersAdded { members: vec![] },
        };
        let clock = u64::from(a >> 2) + i as u64;
        updates.push(MembershipUpdate::sign(
            &chat,
            vec![GroupEvent { clock, kind }],
            &keys[author],
        ));
    }
    let limits = GroupLimits { max_members: 3 };
    if let Ok(f) = GroupState::fold(&chat, &updates, limits) {
        let s = &f.state;
        assert!(s.members().len() <= 3, "member cap");
        assert!(s.joined().is_subset(s.members()));
        assert_eq!(s.creator(), Some(ids[0].as_str()));
        // Arrival order does not matter.
        let mut rev = updates.clone();
        rev.reverse();
        assert_eq!(
            &GroupState::fold(&chat, &rev, limits)
                .expect("same fold")
                .state,
            s
        );
    }
    let g5 = MembershipUpdateMessage {
        chat_id: chat,
        updates,
        message: None,
    };
    consume(&g5.encode());
}

/// `Record::decode` (the conversations' persisted records): a decoded record re-encodes to
/// bytes that decode to it.
pub fn chat_record(data: &[u8]) {
    use hush_core::chat::direct::Record;
    if let Ok(r) = Record::decode(data) {
        assert_eq!(Record::decode(&r.encode()).as_ref(), Ok(&r));
        let _ = r.flatten();
    }
}

/// The record-log snapshot decoder (`decode_snapshot`, issue 16 item 10): any bytes give
/// records or a typed error; what decodes re-encodes to a snapshot that decodes to the same
/// records, and folding it again changes nothing.
pub fn record_snapshot(data: &[u8]) {
    use hush_core::chat::direct::{compact, decode_snapshot, encode_snapshot};
    if let Ok(records) = decode_snapshot(data) {
        let again = decode_snapshot(&encode_snapshot(&records));
        assert_eq!(again.as_ref(), Ok(&records));
        let folded = compact(records);
        assert_eq!(compact(folded.clone()), folded);
    }
}

/// `PublicChats::receive` over a sequence of received messages on two joined chats and one
/// not joined. Input `(code, len, payload)*`; code bits: 0–1 chat, 2–3 signer (none, author,
/// receiver), 4 raw payload or a valid message whose text is the payload, 5–6 its form
/// (Transit, wrapped Transit, protobuf). Repeats are duplicates.
pub fn public_chats(data: &[u8]) {
    use hush_core::whisper::{ReceivedMessage, Topic};
    let k = keys();
    let mut chats = PublicChats::new(ChatConfig::default(), k.receiver);
    for name in [CHAT, "status"] {
        let _ = chats.join(name);
    }
    for (i, (code, payload)) in crate::split_messages(data).into_iter().enumerate() {
        let chat = ["fuzz", "status", "not-joined", "fuzz"][usize::from(code & 3)];
        let signer = match code >> 2 & 3 {
            0 => None,
            1 | 3 => Some(public_key(&k.author)),
            _ => Some(public_key(&k.receiver)),
        };
        let bytes = if code & 0x10 == 0 {
            payload.to_vec()
        } else {
            let text = String::from_utf8_lossy(payload);
            let mut m = message(&text, MessageType::PublicGroupUserMessage);
            m.content.chat_id = chat.into();
            m.clock += i as u64;
            let (format, wrapped) = match code >> 5 & 3 {
                0 => (PayloadFormat::Transit, false),
                1 => (PayloadFormat::Transit, true),
                _ => (PayloadFormat::Protobuf, false),
            };
            encode_message(format, &m, &k.author, wrapped)
        };
        let received = ReceivedMessage {
            envelope_hash: [i as u8; 32],
            topic: Topic([0; 4]),
            payload: bytes,
            padding: Vec::new(),
            signer,
            sent_secs: T0.as_secs() as u32,
            ttl_secs: 10,
            pow: 1.0,
        };
        let _ = chats.receive(T0, chat, &received);
    }
}

fn conversations_config() -> ConversationsConfig {
    ConversationsConfig {
        publish_contact_code: false,
        ..Default::default()
    }
}

/// `Conversations::handle_incoming` by Bob. Input `mode, rest`: mode `0`: `rest` goes raw to
/// `handle_incoming` from Alice under every `Via`; other: Alice sends `rest` as a 1:1 text to
/// Bob (mode bit 1: a second text follows) and each of her Whisper payloads reaches Bob,
/// first with one byte replaced (position and value from the mode and first text byte), then
/// intact.
pub fn conversations(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = keys();
    let mut bob = Conversations::new(
        conversations_config(),
        k.receiver,
        "bob-1",
        seed_from_u64(1),
        T0,
    )
    .expect("conversations");
    let alice_public = public_key(&k.author);
    if mode == 0 {
        for via in [
            Via::Partitioned,
            Via::Negotiated,
            Via::ContactCode,
            Via::Discovery,
        ] {
            bob.handle_incoming(T0, &alice_public, rest, via);
            while bob.poll_action().is_some() {}
        }
        bob.handle_timeout(T0.plus_millis(60_000));
        while bob.poll_action().is_some() {}
        return;
    }
    let mut alice = Conversations::new(
        conversations_config(),
        k.author,
        "alice-1",
        seed_from_u64(2),
        T0,
    )
    .expect("conversations");
    let text = String::from_utf8_lossy(rest);
    let bob_public = public_key(&k.receiver);
    let _ = alice.send_direct(T0, &bob_public, &text);
    if mode & 2 != 0 {
        let _ = alice.send_direct(T0, &bob_public, "and again");
    }
    alice.handle_timeout(T0.plus_millis(1_000));
    let mut posts = Vec::new();
    while let Some(a) = alice.poll_action() {
        if let hush_core::chat::direct::Action::Post { payload, .. } = a {
            posts.push(payload);
        }
    }
    let now = T0.plus_millis(2_000);
    for payload in posts {
        let mut mutated = payload.clone();
        if !mutated.is_empty() {
            let i = usize::from(mode) * mutated.len() / 256;
            mutated[i] = rest.first().copied().unwrap_or(0);
        }
        for p in [mutated, payload] {
            bob.handle_incoming(now, &alice_public, &p, Via::Partitioned);
            while bob.poll_action().is_some() {}
        }
    }
    bob.handle_timeout(T0.plus_millis(120_000));
    while bob.poll_action().is_some() {}
}
