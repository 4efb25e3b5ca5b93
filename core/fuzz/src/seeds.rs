//! Seed inputs of every target: byte strings from the repo's test vectors
//! (`testdata/vectors`, the same files as /work/shared/protocol/vectors) and valid encodings
//! built with hush's own encoders, each in the input layout its target reads. The test
//! harness runs them directly; `run-all.sh` writes them to `corpus/<target>/` (via the
//! `write_seeds` example) before fuzzing, so no binary corpus is kept in git.

use hush_core::chat::app::{encode_message, PayloadFormat};
use hush_core::chat::{C4Content, C4Message, MessageType};
use hush_core::ecies::{pubkey_to_wire, public_key};
use hush_core::p2p::session::{encode_disconnect, encode_hello, DisconnectReason, Hello};
use hush_core::whisper::{
    encode_bloom_filter, encode_messages, encode_pow_requirement, encode_rate_limits_packet,
    mailserver, Encryption, Envelope, MessageResponse, MessagesRequest, RateLimits,
    RequestCompletion, RequestPayload, StatusPacket, Topic,
};

use crate::p2p::flags;
use crate::whisper::{wrap_payload, FUZZ_TOPIC, MAILSERVER_KEY};
use crate::{join_messages, T0};

macro_rules! vector {
    ($file:literal) => {
        include_str!(concat!("../../../testdata/vectors/", $file))
    };
}

const RLPX: &str = vector!("rlpx_eip8_handshake.json");
const FRAME: &str = vector!("rlpx_frame_fake_mac.json");
const HELLO: &str = vector!("devp2p_hello_eip8.json");
const RLP_VALID: &str = vector!("ethereum_tests_rlptest.json");
const RLP_INVALID: &str = vector!("ethereum_tests_invalidRLPTest.json");
const ECIES: &str = vector!("ecies_geth_vectors.json");
const WHISPER: &str = vector!("whisperv6_vectors.json");
const CHAT: &str = vector!("status_chat_vectors.json");
const GO_CHAT_036: &str = vector!("go-generated/chat/status-go-v0.36.0.json");
const GO_CHAT_4C0: &str = vector!("go-generated/chat/status-go-4c0d8de.json");
const GO_BUNDLE: &str = vector!("go-generated/encryption/bundle.json");
const GO_DH_ONLY: &str = vector!("go-generated/encryption/dh_only.json");
const GO_PROTOCOL: &str = vector!("go-generated/encryption/protocol_message.json");
const GO_RATCHET: &str = vector!("go-generated/encryption/double_ratchet.json");

/// Every string value of a JSON document that is hex (optionally `0x`-prefixed) of at least
/// one byte, decoded, in document order.
pub fn hex_strings(json: &str) -> Vec<Vec<u8>> {
    fn visit(v: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
        match v {
            serde_json::Value::String(s) => {
                let h = s.strip_prefix("0x").unwrap_or(s);
                if h.len() >= 2 {
                    if let Ok(b) = hex::decode(h) {
                        out.push(b);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| visit(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| visit(x, out)),
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_str(json).expect("vector file is JSON");
    let mut out = Vec::new();
    visit(&v, &mut out);
    out
}

fn prefixed(prefix: &[u8], items: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    items.into_iter().map(|b| [prefix, &b].concat()).collect()
}

fn status() -> StatusPacket {
    StatusPacket {
        version: 6,
        min_pow: 0.002,
        bloom: Some(hush_core::whisper::topic_to_bloom(FUZZ_TOPIC)),
        light_node: true,
        confirmations_enabled: true,
        rate_limits: Some(RateLimits {
            ip_limit: 10,
            peer_id_limit: 5,
            topic_limit: 1,
        }),
    }
}

fn envelopes() -> Vec<Envelope> {
    let mut v: Vec<Envelope> = [&b"hello"[..], b"", &[0x42; 300]]
        .iter()
        .enumerate()
        .filter_map(|(i, p)| wrap_payload(p, i % 2 == 0, &Encryption::Symmetric(MAILSERVER_KEY)))
        .collect();
    v.push(Envelope {
        expiry: T0.as_secs() as u32 + 50,
        ttl: 50,
        topic: Topic([1, 2, 3, 4]),
        data: vec![0xaa; 40],
        nonce: 7,
    });
    v
}

fn c4(text: &str, chat: &str) -> C4Message {
    C4Message {
        text: text.into(),
        content_type: "text/plain".into(),
        message_type: MessageType::PublicGroupUserMessage,
        // A Lamport clock the receiver accepts at T0 (status-go: ms × 100).
        clock: T0.as_millis() * 100 + 1,
        timestamp_ms: T0.as_millis(),
        content: C4Content {
            chat_id: chat.into(),
            text: text.into(),
            ..Default::default()
        },
    }
}

fn chat_payloads(chat: &str) -> Vec<Vec<u8>> {
    let key = secp256k1::SecretKey::from_byte_array(&[0x11; 32]).expect("key");
    vec![
        encode_message(PayloadFormat::Transit, &c4("hello", chat), &key, false),
        encode_message(PayloadFormat::Transit, &c4("wrapped", chat), &key, true),
        encode_message(PayloadFormat::Protobuf, &c4("protobuf", chat), &key, false),
    ]
}

fn request() -> RequestPayload {
    RequestPayload {
        lower: T0.as_secs() as u32 - 3600,
        upper: T0.as_secs() as u32 + 60,
        bloom: hush_core::whisper::topic_to_bloom(FUZZ_TOPIC),
        limit: 10,
        cursor: vec![0x11; 36],
        batch: true,
    }
}

fn hello(version: u64) -> Vec<u8> {
    encode_hello(&Hello {
        version,
        client_id: "seed".into(),
        capabilities: vec![("shh".into(), 6)],
        listen_port: 30303,
        node_id: pubkey_to_wire(&public_key(&crate::p2p::keys().local)).to_vec(),
        extra_elements: 0,
    })
}

/// `(code, payload)` messages a peer sends after the Hellos (codes absolute: shh from 0x10).
fn session_messages() -> Vec<u8> {
    join_messages(&[
        (0x02, &[0xc0][..]),
        (0x03, &[0xc0]),
        (0x10, &status().encode()),
        (0x11, &encode_messages(&envelopes())),
        (0x12, &encode_pow_requirement(0.5)),
        (0x01, &encode_disconnect(DisconnectReason::UselessPeer)),
    ])
}

fn mvds_records() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use hush_core::mvds::{encode_payload, Action, Mvds, Numbering, Parents, PeerId, SendOptions};
    let mut m = Mvds::new(Default::default(), T0).expect("mvds");
    let group = [7; 32];
    m.add_peer(T0, group, PeerId([2; 65])).expect("peer");
    for body in [&b"a"[..], b"b"] {
        let options = SendOptions {
            parents: Parents::Auto,
            ..Default::default()
        };
        m.send(T0, group, body.to_vec(), options).expect("send");
    }
    let mut records = Vec::new();
    let mut payloads = Vec::new();
    for epoch in 0..3 {
        m.handle_timeout(T0.plus_millis(epoch * m.config().epoch_interval_ms));
        while let Some(a) = m.poll_action() {
            match a {
                Action::Persist(r) => records.push(r.encode()),
                Action::Send { bytes, .. } => payloads.push(bytes),
                _ => {}
            }
        }
    }
    if let Ok(p) = hush_core::mvds::decode_payload(&payloads[0], Numbering::Status2019) {
        payloads.push(encode_payload(&p, Numbering::VacHead));
    }
    (records, payloads)
}

fn conversation_records() -> Vec<Vec<u8>> {
    use hush_core::chat::direct::{Action, Conversations, ConversationsConfig};
    let key = |c: u8| secp256k1::SecretKey::from_byte_array(&[c; 32]).expect("key");
    let mut alice = Conversations::new(
        ConversationsConfig::default(),
        key(1),
        "alice-1",
        hush_core::rng::seed_from_u64(1),
        T0,
    )
    .expect("conversations");
    let _ = alice.send_direct(T0, &public_key(&key(2)), "hello bob");
    alice.handle_timeout(T0.plus_millis(60_000));
    let mut out = Vec::new();
    while let Some(a) = alice.poll_action() {
        if let Action::Persist(r) = a {
            out.push(r.encode());
        }
    }
    out
}

/// The seeds of target `name` (empty for an unknown name).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let go_chat = || [hex_strings(GO_CHAT_036), hex_strings(GO_CHAT_4C0)].concat();
    match name {
        "handshake" => hex_strings(RLPX),
        "frame" => [
            prefixed(&[0], hex_strings(FRAME)),
            prefixed(&[2], hex_strings(HELLO)),
            prefixed(&[2], vec![hello(5)]),
            vec![[&[1, 0xff, 0xff][..], &session_messages()].concat()],
            vec![[&[1, 0, 40][..], &session_messages()].concat()],
        ]
        .concat(),
        "session" | "node" => {
            let mut v = vec![
                [&[flags::HELLO | flags::SNAPPY][..], &session_messages()].concat(),
                [&[0u8][..], &join_messages(&[(0, &hello(5)), (2, &[0xc0])])].concat(),
                [&[flags::SNAPPY][..], &join_messages(&[(0, &hello(4))])].concat(),
            ];
            v.extend(prefixed(
                &[0],
                hex_strings(HELLO)
                    .into_iter()
                    .map(|h| join_messages(&[(0, &h)])),
            ));
            if name == "node" {
                let all = flags::HELLO | flags::SNAPPY | flags::STATUS;
                v.push([&[all][..], &session_messages()].concat());
                let chat: Vec<Vec<u8>> = chat_payloads(crate::p2p::NODE_CHAT);
                let msgs: Vec<(u8, &[u8])> = chat.iter().map(|p| (0u8, &p[..])).collect();
                v.push([&[all | flags::CHAT_ENVELOPE][..], &join_messages(&msgs)].concat());
            }
            v
        }
        "rlp" => [
            hex_strings(RLP_VALID),
            hex_strings(RLP_INVALID),
            hex_strings(HELLO),
        ]
        .concat(),
        "ecies" => [
            hex_strings(ECIES),
            hex_strings(RLPX),
            vec![
                [&[0, 1, 2, 0, 10][..], b"plaintext"].concat(),
                // Found by libFuzzer: an ephemeral key byte of 0xff (a key above the order).
                vec![0x00, 0xff, 0xff, 0xff, 0xff, 0xb8, 0xfe, 0xbc, 0xdb],
            ],
        ]
        .concat(),
        "enode" => {
            let key = hex::encode(pubkey_to_wire(&public_key(&crate::p2p::keys().remote)));
            vec![
                format!("enode://{key}@127.0.0.1:30303").into_bytes(),
                format!("enode://{key}@[::1]:30303?discport=30301").into_bytes(),
                format!("enode://{key}@10.0.0.1:1").into_bytes(),
            ]
        }
        "envelope" => [
            envelopes().iter().map(Envelope::encode).collect(),
            hex_strings(WHISPER),
        ]
        .concat(),
        "messages" => vec![
            encode_messages(&envelopes()),
            encode_messages(&[]),
            encode_messages(&envelopes()[..1]),
        ],
        "whisper_packets" => vec![
            status().encode(),
            StatusPacket {
                bloom: None,
                rate_limits: None,
                ..status()
            }
            .encode(),
            encode_pow_requirement(0.002),
            encode_bloom_filter(&hush_core::whisper::topic_to_bloom(FUZZ_TOPIC)),
            encode_rate_limits_packet(&RateLimits {
                ip_limit: 1,
                peer_id_limit: 2,
                topic_limit: 3,
            }),
        ],
        "plaintext" => vec![
            [&[0, 9][..], b"hello"].concat(),
            [&[1, 200][..], b"signed hello"].concat(),
            [&[1, 0][..], &[0u8; 300][..]].concat(),
        ],
        "whisper" => vec![
            [
                &[1][..],
                &join_messages(&[
                    (1, &encode_messages(&envelopes())),
                    (2, &encode_pow_requirement(0.1)),
                ]),
            ]
            .concat(),
            [&[3][..], &join_messages(&[(0, b"hello"), (1, b"signed")])].concat(),
            [
                &[0][..],
                &join_messages(&[
                    (0, &status().encode()),
                    (
                        3,
                        &encode_bloom_filter(&hush_core::whisper::topic_to_bloom(FUZZ_TOPIC)),
                    ),
                ]),
            ]
            .concat(),
        ],
        "whisper_mailserver" => vec![
            [&[3][..], &join_messages(&[(0, &request().encode())])].concat(),
            [
                &[3][..],
                &join_messages(&[(
                    0,
                    &RequestPayload {
                        cursor: vec![],
                        ..request()
                    }
                    .encode(),
                )]),
            ]
            .concat(),
            [
                &[1][..],
                &join_messages(&[(
                    126,
                    &MessagesRequest {
                        id: vec![3; 32],
                        from: T0.as_secs() as u32 - 100,
                        to: T0.as_secs() as u32 + 100,
                        bloom: hush_core::whisper::topic_to_bloom(FUZZ_TOPIC).0.to_vec(),
                        limit: 5,
                        cursor: vec![],
                    }
                    .encode(),
                )]),
            ]
            .concat(),
        ],
        "mailserver_codecs" => vec![
            request().encode(),
            RequestCompletion {
                request_id: [1; 32],
                last_envelope_hash: [2; 32],
                cursor: vec![3; 36],
                error: None,
            }
            .encode(),
            MessageResponse {
                batch_hash: [4; 32],
                errors: vec![],
            }
            .encode(),
            mailserver::encode_batch_ack(&[5; 32]),
            encode_messages(&envelopes()),
        ],
        "security_proto" => [
            hex_strings(GO_BUNDLE),
            hex_strings(GO_PROTOCOL),
            hex_strings(GO_DH_ONLY),
            hex_strings(GO_RATCHET),
        ]
        .concat(),
        "security_decrypt" => [
            prefixed(&[0], hex_strings(GO_PROTOCOL)),
            prefixed(&[0], hex_strings(GO_DH_ONLY)),
            vec![
                b"\x02hello bob".to_vec(),
                b"\x01dh only".to_vec(),
                b"\x04\x80\x00".to_vec(),
            ],
        ]
        .concat(),
        "mvds_payload" => mvds_records().1,
        "mvds_persist" => mvds_records().0,
        "mvds_sync" => [
            prefixed(
                &[8],
                mvds_records().1.iter().map(|p| join_messages(&[(0, p)])),
            ),
            vec![
                vec![0, 0, 0, 1, 1, 2, 2, 3, 9, 4, 0],
                vec![1, 1, 0, 2, 1, 4, 2],
                vec![6, 3, 1, 4, 0, 0, 1],
            ],
        ]
        .concat(),
        "chat_app" => [
            go_chat(),
            hex_strings(CHAT),
            chat_payloads("fuzz"),
            (0..5u8)
                .map(|m| [&[m, 10, 0x41][..], b"hello"].concat())
                .collect(),
        ]
        .concat(),
        "chat_record" => conversation_records(),
        "record_snapshot" => {
            use hush_core::chat::direct::{encode_snapshot, Record};
            let records: Vec<Record> = conversation_records()
                .iter()
                .filter_map(|r| Record::decode(r).ok())
                .collect();
            vec![encode_snapshot(&records), encode_snapshot(&[])]
        }
        "group_fold" => vec![
            vec![0, 0, 0, 0, 2, 1, 0, 4, 1, 1, 3, 1, 0, 1, 0],
            vec![0, 0, 1, 0, 2, 2, 0, 5, 1, 2, 3, 2],
        ],
        "public_chats" => {
            let mut v = vec![join_messages(&[
                (0x14, b"hello"),
                (0x14, b"hello"),
                (0x35, b"wrapped"),
                (0x44, b"protobuf"),
                (0x10, b"unsigned"),
            ])];
            let go = go_chat();
            v.push(join_messages(
                &go.iter()
                    .take(16)
                    .map(|p| (4u8, &p[..]))
                    .collect::<Vec<_>>(),
            ));
            v.push(join_messages(
                &chat_payloads("fuzz")
                    .iter()
                    .map(|p| (4u8, &p[..]))
                    .collect::<Vec<_>>(),
            ));
            v
        }
        "conversations" => [
            prefixed(&[0], go_chat()),
            vec![
                b"\x01hello bob".to_vec(),
                b"\x03two texts".to_vec(),
                b"\x80x".to_vec(),
            ],
        ]
        .concat(),
        _ => Vec::new(),
    }
}

/// A small encoded Hello and Disconnect, for the tests of this module.
pub fn base_payloads() -> Vec<Vec<u8>> {
    vec![hello(5), encode_disconnect(DisconnectReason::TooManyPeers)]
}
