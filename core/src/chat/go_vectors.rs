//! Every vector of `testdata/vectors/go-generated/chat/` (written by status-go v0.36.0 and
//! 4c0d8de themselves): decoded, verified, decrypted with the keys given, fed through hush's
//! receive paths, and re-encoded byte for byte where the README says the bytes are
//! deterministic (everything but the `g5` Transit and the encryption layer's random parts).

use prost::Message as _;
use secp256k1::{PublicKey, SecretKey};
use serde_json::Value;

use super::app::{
    decode_app, encode_membership, encode_message, wrap_application_metadata, AppRecord,
    PayloadFormat, Wrapper,
};
use super::direct::{Action, ChatEvent, Conversations, ConversationsConfig, Record, Via};
use super::format::ChatKind;
use super::group::{
    member_id, GroupEvent, GroupEventKind, GroupLimits, GroupState, MembershipUpdate,
    MembershipUpdateMessage,
};
use super::proto::{ApplicationMetadataMessage, ChatMessage as ProtoChat};
use super::public::{message_id, public_chat_key, public_chat_topic};
use super::service::{ChatConfig, PublicChats};
use super::transit::{C4Message, MessageType};
use crate::ecies::{ecdh_x, public_key};
use crate::keccak::keccak256;
use crate::rng::seed_from_u64;
use crate::security::proto::ProtocolMessage;
use crate::security::{OwnPreKeyRecord, Persist};
use crate::whisper::recover_signer;
use crate::Time;

const V036: &str =
    include_str!("../../../testdata/vectors/go-generated/chat/status-go-v0.36.0.json");
const V0362: &str =
    include_str!("../../../testdata/vectors/go-generated/chat/status-go-4c0d8de.json");

fn v036() -> Value {
    serde_json::from_str(V036).unwrap()
}

fn v0362() -> Value {
    serde_json::from_str(V0362).unwrap()
}

/// The value at a dotted path (numeric parts index arrays).
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) if v.is_array() => &v[i],
        _ => &v[k],
    })
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("no string at {path}"))
}

fn u(v: &Value, path: &str) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("no integer at {path}"))
}

fn h(v: &Value, path: &str) -> Vec<u8> {
    let t = s(v, path);
    hex::decode(t.strip_prefix("0x").unwrap_or(t)).unwrap()
}

fn secret(v: &Value, who: &str) -> SecretKey {
    SecretKey::from_slice(&h(v, &format!("keys.{who}.private_hex"))).unwrap()
}

fn id32(v: &Value, path: &str) -> [u8; 32] {
    h(v, path).try_into().unwrap()
}

/// A moment just after the vectors' clocks (1575072000000 ms).
const NOW: Time = Time(1_575_072_060_000);

fn bob_conversations(v: &Value, records: Vec<Record>) -> Conversations {
    let bob = secret(v, "bob");
    let config = ConversationsConfig {
        publish_contact_code: false,
        ..Default::default()
    };
    Conversations::restore(
        config,
        bob,
        s(v, "keys.bob.installation_id"),
        seed_from_u64(7),
        NOW,
        records,
    )
    .unwrap()
}

/// Feeds one Whisper payload from alice to bob's conversations; returns what was delivered.
fn deliver(c: &mut Conversations, from: &PublicKey, payload: &[u8]) -> Vec<ChatEvent> {
    c.handle_incoming(NOW, from, payload, Via::Partitioned);
    let mut out = Vec::new();
    while let Some(a) = c.poll_action() {
        if let Action::Deliver(e) = a {
            out.push(e);
        }
    }
    out
}

/// The DH-only part of an encrypted vector: the shared key status-go derived equals ours, and
/// the ciphertext opens to the application bytes.
fn check_dh_only(v: &Value, path: &str, bob: &SecretKey, app: &[u8]) {
    let pm =
        ProtocolMessage::decode(h(v, &format!("{path}.whisper_payload_hex")).as_slice()).unwrap();
    assert_eq!(pm.installation_id, s(v, "keys.alice.installation_id"));
    let dm = &pm.direct_message["none"];
    let eph = dm.dh_header.as_ref().unwrap().key.clone();
    assert_eq!(
        eph,
        h(
            v,
            &format!("{path}.fields.direct_message.none.dh_header_key_hex")
        )
    );
    let shared = ecdh_x(bob, &PublicKey::from_slice(&eph).unwrap());
    assert_eq!(shared.to_vec(), h(v, &format!("{path}.dh_shared_key_hex")));
    let plain = crate::security::x3dh::dh_decrypt(bob, &eph, &dm.payload).unwrap();
    assert_eq!(plain, app);
    // The bundle it carries is alice's, and verifies.
    assert_eq!(pm.bundles.len(), 1);
    crate::security::bundle::verify_bundle(&pm.bundles[0], 16).unwrap();
    assert_eq!(
        pm.bundles[0].identity,
        public_key(&secret(v, "alice")).serialize().to_vec()
    );
}

// ---------------------------------------------------------------------------------------------
// status-go v0.36.0 (Transit era)

#[test]
fn v036_c4_messages_decode_reencode_and_ids() {
    let v = v036();
    let alice = public_key(&secret(&v, "alice"));
    for (path, kind) in [
        ("public", MessageType::PublicGroupUserMessage),
        ("one_to_one", MessageType::UserMessage),
        ("one_to_one_x3dh", MessageType::UserMessage),
        ("group.group_message", MessageType::GroupUserMessage),
    ] {
        let bytes = h(&v, &format!("{path}.transit_hex"));
        assert_eq!(bytes, s(&v, &format!("{path}.transit_utf8")).as_bytes());
        let c4 = C4Message::decode(&bytes).unwrap();
        assert_eq!(c4.message_type, kind, "{path}");
        assert_eq!(c4.text, s(&v, &format!("{path}.input.text")));
        assert_eq!(
            c4.content.text,
            s(&v, &format!("{path}.decoded.content.text"))
        );
        assert_eq!(
            c4.content.chat_id,
            s(&v, &format!("{path}.decoded.content.chat_id"))
        );
        assert_eq!(c4.content_type, "text/plain");
        assert_eq!(c4.clock, u(&v, &format!("{path}.input.clock")));
        assert_eq!(c4.timestamp_ms, u(&v, &format!("{path}.input.timestamp")));
        // Deterministic bytes: hush writes exactly what status-go wrote.
        assert_eq!(c4.encode(), bytes, "{path}");
        let id = id32(&v, &format!("{path}.message_id"));
        assert_eq!(message_id(&alice, &bytes), id, "{path}");
        let app = decode_app(&bytes, &alice).unwrap();
        assert_eq!(
            (app.format, app.wrapper, app.id),
            (PayloadFormat::Transit, Wrapper::Bare, id)
        );
        assert_eq!(app.record, AppRecord::Message(c4));
    }
}

#[test]
fn v036_public_bare_and_messenger_send_forms() {
    let v = v036();
    let alice_sk = secret(&v, "alice");
    let alice = public_key(&alice_sk);
    let name = s(&v, "public.whisper.topic_string");
    assert_eq!(
        public_chat_topic(name).0.to_vec(),
        h(&v, "public.whisper.topic")
    );
    assert_eq!(
        public_chat_key(name).to_vec(),
        h(&v, "public.whisper.sym_key_pbkdf2")
    );
    let bob = secret(&v, "bob");
    let mut chats = PublicChats::new(ChatConfig::default(), bob);
    chats.join(name).unwrap();
    let transit = h(&v, "public.transit_hex");
    let (m, format) = chats.receive_payload(NOW, name, &alice, &transit).unwrap();
    assert_eq!(format, PayloadFormat::Transit);
    assert_eq!(m.message_id, id32(&v, "public.message_id"));
    assert_eq!(m.text, "hello public");
    assert_eq!(m.from, alice.serialize_uncompressed());

    // Messenger.Send: Transit inside ProtocolMessage.public_message (102) with the
    // installation id (2) and alice's bundle (3); the id is over the public_message bytes.
    let w = "public.messenger_send_wrapped";
    let pm =
        ProtocolMessage::decode(h(&v, &format!("{w}.whisper_payload_hex")).as_slice()).unwrap();
    assert_eq!(pm.public_message, transit);
    assert_eq!(pm.installation_id, "alice-installation");
    assert_eq!(
        pm.bundles[0].encode_to_vec(),
        h(&v, &format!("{w}.fields.bundles_hex.0"))
    );
    assert_eq!(id32(&v, &format!("{w}.message_id")), m.message_id);
    // Bob's security layer takes the bundle as from a contact code; then the bytes are the
    // same message (a duplicate of the bare copy).
    let mut c = bob_conversations(&v, vec![]);
    let bytes = c.handle_public_protocol_message(NOW, &alice, &pm).unwrap();
    assert_eq!(bytes, transit);
    let installs = c.security().active_installations(NOW, &alice);
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0].installation_id, "alice-installation");
    assert_eq!(installs[0].protocol_version, 1);
    assert!(chats.receive_payload(NOW, name, &alice, &bytes).is_err());
    // A tampered bundle refuses the whole message, as in status-go.
    let mut bad = pm.clone();
    bad.bundles[0].signature[5] ^= 1;
    let mut c2 = bob_conversations(&v, vec![]);
    assert!(c2
        .handle_public_protocol_message(NOW, &alice, &bad)
        .is_err());
    assert!(c2.security().active_installations(NOW, &alice).is_empty());
}

#[test]
fn v036_one_to_one_dh_only_decrypts_and_is_delivered() {
    let v = v036();
    let alice = public_key(&secret(&v, "alice"));
    let bob = secret(&v, "bob");
    let transit = h(&v, "one_to_one.transit_hex");
    check_dh_only(&v, "one_to_one.encrypted", &bob, &transit);
    assert_eq!(
        s(&v, "one_to_one.encrypted.whisper_topic_string"),
        crate::chat::topics::partitioned_topic_string(&public_key(&bob))
    );
    let mut c = bob_conversations(&v, vec![]);
    let events = deliver(
        &mut c,
        &alice,
        &h(&v, "one_to_one.encrypted.whisper_payload_hex"),
    );
    let [ChatEvent::Direct(m)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(m.text, "hello bob");
    assert_eq!(m.chat, member_id(&alice));
    assert_eq!(m.message_id, id32(&v, "one_to_one.message_id"));
    // `auto` answers alice in the form she used.
    assert_eq!(
        c.payload_format(ChatKind::Direct, &member_id(&alice)),
        PayloadFormat::Transit
    );
}

#[test]
fn v036_one_to_one_x3dh_decrypts_with_bobs_signed_prekey() {
    let v = v036();
    let alice = public_key(&secret(&v, "alice"));
    let spk = h(
        &v,
        "one_to_one_x3dh.bob_bundle.bob_signed_prekey_private_hex",
    );
    let spk_pub = public_key(&SecretKey::from_slice(&spk).unwrap());
    assert_eq!(
        spk_pub.serialize().to_vec(),
        h(
            &v,
            "one_to_one_x3dh.bob_bundle.bob_signed_prekey_public_hex"
        )
    );
    let prekey = OwnPreKeyRecord {
        version: 1,
        secret: spk,
        x25519_secret: vec![7; 32],
        created_at_ms: NOW.as_millis(),
        expired_at_ms: 0,
    };
    let mut c = bob_conversations(&v, vec![Record::Security(Persist::OwnPreKey(prekey))]);
    let payload = h(&v, "one_to_one_x3dh.encrypted.whisper_payload_hex");
    let pm = ProtocolMessage::decode(payload.as_slice()).unwrap();
    let dm = &pm.direct_message["bob-installation"];
    assert_eq!(
        dm.x3dh_header.as_ref().unwrap().id,
        spk_pub.serialize().to_vec()
    );
    let events = deliver(&mut c, &alice, &payload);
    let [ChatEvent::Direct(m)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(m.text, "hello bob via x3dh");
    assert_eq!(m.clock, u(&v, "one_to_one_x3dh.input.clock"));
    assert_eq!(m.message_id, id32(&v, "one_to_one_x3dh.message_id"));
}

fn v036_events(v: &Value) -> Vec<GroupEvent> {
    let alice = format!("0x{}", &s(v, "keys.alice.public_hex")[2..]);
    let bob = format!("0x{}", &s(v, "keys.bob.public_hex")[2..]);
    vec![
        GroupEvent {
            clock: u(v, "group.membership_update.events.0.clockValue"),
            kind: GroupEventKind::ChatCreated {
                name: s(v, "group.membership_update.events.0.name").into(),
                member: alice,
            },
        },
        GroupEvent {
            clock: u(v, "group.membership_update.events.1.clockValue"),
            kind: GroupEventKind::MembersAdded { members: vec![bob] },
        },
    ]
}

#[test]
fn v036_membership_update_verifies_to_alice_and_hush_signs_the_same_bytes() {
    let v = v036();
    let alice_sk = secret(&v, "alice");
    let alice = public_key(&alice_sk);
    let chat = s(&v, "group.chat_id");
    let g5 = h(&v, "group.membership_update.transit_hex");
    let m = MembershipUpdateMessage::decode(&g5).unwrap();
    assert_eq!(m.chat_id, chat);
    assert_eq!(m.message, None);
    let up = &m.updates[0];
    assert_eq!(up.events, v036_events(&v));
    assert_eq!(up.signature, s(&v, "group.membership_update.signature"));
    // The exact signing string of stringifyMembershipUpdateEvents, chat-created's member
    // included, and it recovers alice.
    assert_eq!(
        up.signing_string(),
        s(&v, "group.membership_update.signing.signing_string")
    );
    assert_eq!(up.recover_author().unwrap(), alice);
    // Leaving the member out (hush before this change) recovers the other key recorded.
    let mut without = up.clone();
    if let GroupEventKind::ChatCreated { member, .. } = &mut without.events[0].kind {
        member.clear();
    }
    assert_eq!(
        without.signing_string(),
        s(
            &v,
            "group.membership_update.signing.signing_string_without_chat_created_member"
        )
    );
    assert_eq!(
        member_id(&without.recover_author().unwrap()),
        s(
            &v,
            "group.membership_update.signing.recovers_without_chat_created_member"
        )
    );
    // hush builds the same update: same string, same (RFC 6979) signature.
    let ours = MembershipUpdate::sign(chat, v036_events(&v), &alice_sk);
    assert_eq!(&ours, up);
    // The message id is over the bytes as sent (not reproducible: Go map order).
    assert_eq!(
        message_id(&alice, &g5),
        id32(&v, "group.membership_update.message_id")
    );
    // status-go's membership: alice creator and admin, alice and bob members.
    let f = GroupState::fold(chat, &m.updates, GroupLimits::default()).unwrap();
    assert!(f.rejected.is_empty(), "{:?}", f.rejected);
    assert_eq!(f.state.name(), "hush-group");
    let (a, b) = (
        member_id(&alice),
        member_id(&public_key(&secret(&v, "bob"))),
    );
    assert_eq!(f.state.members().iter().cloned().collect::<Vec<_>>(), {
        let mut x = vec![a.clone(), b];
        x.sort();
        x
    });
    assert_eq!(
        f.state.admins().iter().cloned().collect::<Vec<_>>(),
        vec![a]
    );
    // Our encoding of the same update decodes to the same group.
    let ours_g5 = MembershipUpdateMessage {
        chat_id: chat.into(),
        updates: vec![ours],
        message: None,
    }
    .encode();
    let back = MembershipUpdateMessage::decode(&ours_g5).unwrap();
    assert_eq!(
        GroupState::fold(chat, &back.updates, GroupLimits::default())
            .unwrap()
            .state,
        f.state
    );
}

#[test]
fn v036_group_update_and_message_reach_bob() {
    let v = v036();
    let alice = public_key(&secret(&v, "alice"));
    let bob = secret(&v, "bob");
    let chat = s(&v, "group.chat_id");
    check_dh_only(
        &v,
        "group.membership_update.encrypted",
        &bob,
        &h(&v, "group.membership_update.transit_hex"),
    );
    check_dh_only(
        &v,
        "group.group_message.encrypted",
        &bob,
        &h(&v, "group.group_message.transit_hex"),
    );
    let mut c = bob_conversations(&v, vec![]);
    let events = deliver(
        &mut c,
        &alice,
        &h(&v, "group.membership_update.encrypted.whisper_payload_hex"),
    );
    let [ChatEvent::GroupUpdated {
        group_id,
        members,
        admins,
        name,
    }] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!((group_id.as_str(), name.as_str()), (chat, "hush-group"));
    assert_eq!(members.len(), 2);
    assert_eq!(admins, &vec![member_id(&alice)]);
    let events = deliver(
        &mut c,
        &alice,
        &h(&v, "group.group_message.encrypted.whisper_payload_hex"),
    );
    let [ChatEvent::Group { group_id, message }] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(group_id, chat);
    assert_eq!(message.text, "hello group");
    assert_eq!(
        message.message_id,
        id32(&v, "group.group_message.message_id")
    );
    assert_eq!(c.stats().group_events_rejected + c.stats().undecodable, 0);
}

/// status-go v0.36.0's own decoder fails on this (its g5-with-message output): hush reads it,
/// with the Transit cache shared between the g5 and the c4 inside.
#[test]
fn v036_g5_with_message_decodes_in_hush() {
    let v = v036();
    let alice = public_key(&secret(&v, "alice"));
    let bytes = h(&v, "group.membership_update_with_message.transit_hex");
    let m = MembershipUpdateMessage::decode(&bytes).unwrap();
    let c4 = m.message.unwrap();
    assert_eq!(c4.text, "hello group");
    assert_eq!(c4.content.chat_id, s(&v, "group.chat_id"));
    assert_eq!(m.updates[0].recover_author().unwrap(), alice);
    let app = decode_app(&bytes, &alice).unwrap();
    assert_eq!(
        app.id,
        id32(&v, "group.membership_update_with_message.message_id")
    );
}

// ---------------------------------------------------------------------------------------------
// status-go 4c0d8de (protobuf era)

#[test]
fn v0362_chat_messages_decode_verify_and_reencode_byte_exact() {
    let v = v0362();
    let alice_sk = secret(&v, "alice");
    let alice = public_key(&alice_sk);
    for (path, kind) in [
        ("public", MessageType::PublicGroupUserMessage),
        ("one_to_one", MessageType::UserMessage),
        ("group.group_message", MessageType::GroupUserMessage),
    ] {
        let payload = h(&v, &format!("{path}.chat_message_protobuf_hex"));
        let cm = ProtoChat::decode(payload.as_slice()).unwrap();
        assert_eq!(cm.clock, u(&v, &format!("{path}.input.clock")));
        assert_eq!(cm.timestamp, u(&v, &format!("{path}.input.timestamp")));
        assert_eq!(cm.text, s(&v, &format!("{path}.input.text")));
        assert_eq!(cm.chat_id, s(&v, &format!("{path}.input.chat_id")));
        assert_eq!(cm.content_type, 0);
        assert_eq!(cm.encode_to_vec(), payload, "{path}");
        let amm_bytes = h(&v, &format!("{path}.application_metadata_hex"));
        let amm = ApplicationMetadataMessage::decode(amm_bytes.as_slice()).unwrap();
        assert_eq!(amm.payload, payload);
        assert_eq!(amm.message_type, 0);
        assert_eq!(amm.signature, h(&v, &format!("{path}.signature_hex")));
        let sig: [u8; 65] = amm.signature.clone().try_into().unwrap();
        assert_eq!(recover_signer(&sig, &keccak256(&payload)).unwrap(), alice);
        // hush's whole send path writes the same bytes (RFC 6979 signatures).
        let c4 = cm.to_c4();
        assert_eq!(c4.message_type, kind, "{path}");
        assert_eq!(ProtoChat::from_c4(&c4), cm);
        assert_eq!(
            encode_message(PayloadFormat::Protobuf, &c4, &alice_sk, false),
            amm_bytes,
            "{path}"
        );
        let id = id32(&v, &format!("{path}.message_id"));
        let app = decode_app(&amm_bytes, &alice).unwrap();
        assert_eq!(
            (app.format, app.wrapper, app.author, app.id),
            (
                PayloadFormat::Protobuf,
                Wrapper::ApplicationMetadata,
                alice,
                id
            )
        );
        assert_eq!(app.record, AppRecord::Message(c4));
    }
    assert_eq!(
        h(&v, "public.whisper.payload_hex"),
        h(&v, "public.application_metadata_hex")
    );
}

#[test]
fn v0362_public_message_is_received() {
    let v = v0362();
    let alice = public_key(&secret(&v, "alice"));
    let name = s(&v, "public.whisper.topic_string");
    assert_eq!(
        public_chat_key(name).to_vec(),
        h(&v, "public.whisper.sym_key_pbkdf2")
    );
    let mut chats = PublicChats::new(ChatConfig::default(), secret(&v, "bob"));
    chats.join(name).unwrap();
    let (m, format) = chats
        .receive_payload(NOW, name, &alice, &h(&v, "public.whisper.payload_hex"))
        .unwrap();
    assert_eq!(format, PayloadFormat::Protobuf);
    assert_eq!(m.text, "hello public");
    assert_eq!(m.message_id, id32(&v, "public.message_id"));
}

#[test]
fn v0362_one_to_one_and_group_reach_bob_and_auto_answers_in_protobuf() {
    let v = v0362();
    let alice = public_key(&secret(&v, "alice"));
    let bob = secret(&v, "bob");
    let chat = s(&v, "group.chat_id");
    check_dh_only(
        &v,
        "one_to_one.encrypted",
        &bob,
        &h(&v, "one_to_one.application_metadata_hex"),
    );
    check_dh_only(
        &v,
        "group.membership_update.encrypted",
        &bob,
        &h(&v, "group.membership_update.application_metadata_hex"),
    );
    check_dh_only(
        &v,
        "group.group_message.encrypted",
        &bob,
        &h(&v, "group.group_message.application_metadata_hex"),
    );
    let mut c = bob_conversations(&v, vec![]);
    let events = deliver(
        &mut c,
        &alice,
        &h(&v, "one_to_one.encrypted.whisper_payload_hex"),
    );
    let [ChatEvent::Direct(m)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(m.text, "hello bob");
    assert_eq!(m.message_id, id32(&v, "one_to_one.message_id"));
    assert_eq!(
        c.payload_format(ChatKind::Direct, &member_id(&alice)),
        PayloadFormat::Protobuf
    );
    // The membership update: g5 Transit inside an ApplicationMetadataMessage.
    let amm = h(&v, "group.membership_update.application_metadata_hex");
    let app = decode_app(&amm, &alice).unwrap();
    assert_eq!(app.id, id32(&v, "group.membership_update.message_id"));
    let AppRecord::Membership(g5) = &app.record else {
        panic!("{:?}", app.record);
    };
    assert_eq!(
        g5.updates[0].signature,
        s(&v, "group.membership_update.signature")
    );
    // Wrapped as 4c0d8de wraps it (the g5 bytes themselves are Go-map ordered, so hush's
    // own g5 differs; around the same g5 our wrapper is byte-identical).
    let transit = h(&v, "group.membership_update.transit_hex");
    assert_eq!(
        wrap_application_metadata(&transit, &secret(&v, "alice")),
        amm
    );
    let hush_g5 = MembershipUpdateMessage::decode(&transit).unwrap();
    let ours = encode_membership(
        PayloadFormat::Protobuf,
        &hush_g5,
        &secret(&v, "alice"),
        false,
    );
    assert_eq!(decode_app(&ours, &alice).unwrap().record, app.record);
    let events = deliver(
        &mut c,
        &alice,
        &h(&v, "group.membership_update.encrypted.whisper_payload_hex"),
    );
    assert!(
        matches!(events.as_slice(), [ChatEvent::GroupUpdated { group_id, .. }] if group_id == chat),
        "{events:?}"
    );
    let events = deliver(
        &mut c,
        &alice,
        &h(&v, "group.group_message.encrypted.whisper_payload_hex"),
    );
    let [ChatEvent::Group { group_id, message }] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(group_id, chat);
    assert_eq!(message.text, "hello group");
    assert_eq!(
        message.message_id,
        id32(&v, "group.group_message.message_id")
    );
    assert_eq!(
        c.payload_format(ChatKind::Group, chat),
        PayloadFormat::Protobuf
    );
}
