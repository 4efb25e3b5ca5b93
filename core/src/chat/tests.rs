use super::*;
use crate::time::Time;
use proptest::prelude::*;
use secp256k1::SecretKey;
use serde_json::Value;

const CHAT_VECTORS: &str = include_str!("../../../testdata/vectors/status_chat_vectors.json");
const DERIVED: &str = include_str!("../../../testdata/vectors/derived_local_checks.json");

fn spec_payload() -> String {
    let v: Value = serde_json::from_str(CHAT_VECTORS).unwrap();
    v["transit_c4_spec_example"]["payload"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn c4_spec_example_roundtrips_byte_exact() {
    let p = spec_payload();
    let m = C4Message::decode(p.as_bytes()).unwrap();
    assert_eq!(m.text, "abc123");
    assert_eq!(m.message_type, MessageType::PublicGroupUserMessage);
    assert_eq!(m.clock, 154593077368201);
    assert_eq!(m.content.chat_id, "testing-adamb");
    assert_eq!(String::from_utf8(m.encode()).unwrap(), p);
}

#[test]
fn c4_go_test_vector() {
    let v: Value = serde_json::from_str(CHAT_VECTORS).unwrap();
    let case = &v["transit_c4_go_test"];
    let p = case["payload"].as_str().unwrap();
    let m = C4Message::decode(p.as_bytes()).unwrap();
    let d = &case["decoded"];
    assert_eq!(m.text, d["text"].as_str().unwrap());
    assert_eq!(m.content_type, d["content_type"].as_str().unwrap());
    assert_eq!(
        m.message_type.as_keyword(),
        d["message_type"].as_str().unwrap()
    );
    assert_eq!(m.clock, d["clock"].as_u64().unwrap());
    assert_eq!(m.timestamp_ms, d["timestamp_ms"].as_u64().unwrap());
    assert_eq!(m.content.chat_id, d["content"]["chat-id"].as_str().unwrap());
    assert_eq!(m.content.name.as_deref(), d["content"]["name"].as_str());
    assert_eq!(
        m.content.response_to.as_deref(),
        d["content"]["response-to"].as_str()
    );
    assert_eq!(m.content.text, d["content"]["text"].as_str().unwrap());
    // Re-encoding equals the Go bytes without their cosmetic whitespace.
    assert_eq!(String::from_utf8(m.encode()).unwrap(), p.replace(", ", ","));
}

#[test]
fn c4_cache_refs_escapes_and_bad_inputs() {
    // The same keyword twice: the second is a cache reference.
    let m = C4Message {
        text: "~weird ^text".into(),
        content_type: "text/plain".into(),
        message_type: MessageType::Other("chat-id".into()),
        clock: 1 << 60,
        timestamp_ms: 5,
        content: C4Content {
            chat_id: "c".into(),
            text: "t".into(),
            ..Default::default()
        },
    };
    let enc = String::from_utf8(m.encode()).unwrap();
    assert!(enc.contains("\"~~weird ^text\""), "{enc}");
    assert!(enc.contains("\"~i1152921504606846976\""), "{enc}");
    assert!(
        enc.contains("\"^1\""),
        "second ~:chat-id should be a cache ref: {enc}"
    );
    assert_eq!(C4Message::decode(enc.as_bytes()).unwrap(), m);
    assert!(matches!(
        C4Message::decode(b"[\"^5\",[]]"),
        Err(ChatError::BadCacheRef(_))
    ));
    assert!(matches!(
        C4Message::decode(b"[\"~#c2\",[]]"),
        Err(ChatError::UnexpectedTag(_))
    ));
    assert!(C4Message::decode(b"{}").is_err());
    assert!(
        C4Message::decode(b"[\"~#c4\",[\"a\",\"text/plain\",\"~:user-message\",\"x\",1]]").is_err()
    );
    // Non-text form (content at index 0) and extra trailing fields.
    let sticker = br#"["~#c4",[["^ ","~:chat-id","x","~:pack",1],"sticker","~:public-group-user-message",3,4]]"#;
    let s = C4Message::decode(sticker).unwrap();
    assert_eq!(s.content.chat_id, "x");
    let extra =
        br#"["~#c4",["a","text/plain","~:user-message",1,2,["^ ","~:chat-id","c"],"future"]]"#;
    assert_eq!(C4Message::decode(extra).unwrap().content.chat_id, "c");
}

#[test]
fn public_topic_and_key() {
    let v: Value = serde_json::from_str(DERIVED).unwrap();
    for c in v["topics"]["cases"].as_array().unwrap() {
        assert_eq!(
            hex::encode(public_chat_topic(c["name"].as_str().unwrap()).0),
            c["topic"].as_str().unwrap()
        );
    }
    for c in v["pbkdf2_whisper_symkey"]["cases"].as_array().unwrap() {
        assert_eq!(
            hex::encode(public_chat_key(c["password"].as_str().unwrap())),
            c["key"].as_str().unwrap()
        );
    }
    let cv: Value = serde_json::from_str(CHAT_VECTORS).unwrap();
    let g = &cv["generic_discovery_topic"];
    assert_eq!(
        hex::encode(public_chat_topic(g["name"].as_str().unwrap()).0),
        g["topic"].as_str().unwrap()
    );
}

#[test]
fn lamport_clock_rules() {
    let now = Time(1_545_930_773_682);
    let mut c = LamportClock::default();
    assert_eq!(c.tick(now), 154593077368201);
    assert_eq!(c.tick(now), 154593077368202);
    c.observe(154593077368299, now);
    assert_eq!(c.tick(now), 154593077368300);
    // A clock more than 31 days ahead is unsafe and capped.
    let far = (now.as_millis() + clock::MAX_CLOCK_LEAD_MS + 1) * 100;
    assert!(!LamportClock::is_safe(far, now));
    c.observe(far, now);
    assert_eq!(c.value, (now.as_millis() + clock::MAX_CLOCK_LEAD_MS) * 100);
}

#[test]
fn wrapper_and_message_id() {
    let secp = crate::ecies::secp();
    let author = SecretKey::from_slice(&[4; 32]).unwrap();
    let relay = SecretKey::from_slice(&[6; 32]).unwrap().public_key(secp);
    let transit = spec_payload().into_bytes();
    let wrapped = wrap_payload(&transit, Some(&author));
    let u = unwrap_payload(&wrapped, Some(relay)).unwrap();
    assert!(u.wrapped);
    assert_eq!(u.transit, transit);
    assert_eq!(u.author, Some(author.public_key(secp)));
    assert_eq!(u.id, Some(message_id(&author.public_key(secp), &wrapped)));
    // Bare Transit: author = whisper signer, id over the raw bytes.
    let b = unwrap_payload(&transit, Some(relay)).unwrap();
    assert!(!b.wrapped);
    assert_eq!(b.transit, transit);
    assert_eq!(
        b.id,
        Some(crate::keccak::keccak256_concat(&[
            &relay.serialize_uncompressed(),
            &transit
        ]))
    );
    // Unsigned wrapper: author falls back to the whisper signer.
    let w2 = wrap_payload(&transit, None);
    assert_eq!(
        unwrap_payload(&w2, Some(relay)).unwrap().author,
        Some(relay)
    );
}

proptest! {
    #[test]
    fn transit_decoder_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = C4Message::decode(&bytes);
        let _ = unwrap_payload(&bytes, None);
    }

    #[test]
    fn transit_roundtrip_and_truncations(text in ".{0,40}", chat in "[a-z~^`-]{0,20}", clock in any::<u64>(), ts in any::<u64>(),
                                         resp in proptest::option::of("[0-9a-f]{0,10}")) {
        let m = C4Message {
            text: text.clone(),
            content_type: "text/plain".into(),
            message_type: MessageType::PublicGroupUserMessage,
            clock,
            timestamp_ms: ts,
            content: C4Content { chat_id: chat, text, response_to: resp, ..Default::default() },
        };
        let enc = m.encode();
        prop_assert_eq!(C4Message::decode(&enc).unwrap(), m);
        for cut in 0..enc.len() {
            let _ = C4Message::decode(&enc[..cut]);
        }
    }
}
