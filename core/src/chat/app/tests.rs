use super::*;
use crate::chat::group::{GroupEvent, GroupEventKind, MembershipUpdate};
use crate::chat::transit::{C4Content, MessageType};
use crate::ecies::public_key;
use proptest::prelude::*;

fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).unwrap()
}

fn c4(text: &str, message_type: MessageType, chat: &str) -> C4Message {
    C4Message {
        text: text.into(),
        content_type: "text/plain".into(),
        message_type,
        clock: 157_507_200_000_001,
        timestamp_ms: 1_575_072_000_000,
        content: C4Content {
            chat_id: chat.into(),
            text: text.into(),
            ..Default::default()
        },
    }
}

#[test]
fn every_form_of_both_eras_decodes_with_its_author_and_id() {
    let (author, relay) = (key(4), public_key(&key(6)));
    let m = c4("hi", MessageType::UserMessage, "0x04ab");
    for (format, wrap_v1, wrapper) in [
        (PayloadFormat::Transit, false, Wrapper::Bare),
        (PayloadFormat::Transit, true, Wrapper::StatusProtocolMessage),
        (PayloadFormat::Protobuf, false, Wrapper::ApplicationMetadata),
        // wrap_v1 does not apply to the protobuf form.
        (PayloadFormat::Protobuf, true, Wrapper::ApplicationMetadata),
    ] {
        let bytes = encode_message(format, &m, &author, wrap_v1);
        let app = decode_app(&bytes, &relay).unwrap();
        assert_eq!((app.format, app.wrapper), (format, wrapper));
        assert_eq!(app.record, AppRecord::Message(m.clone()));
        // Bare Transit: the Whisper signer is the author; wrapped: the wrapper signer.
        let expect = if wrapper == Wrapper::Bare {
            relay
        } else {
            public_key(&author)
        };
        assert_eq!(app.author, expect);
        assert_eq!(app.id, message_id(&expect, &bytes));
    }
    // Membership updates: g5 in both eras.
    let g5 = MembershipUpdateMessage {
        chat_id: "c".into(),
        updates: vec![MembershipUpdate::sign(
            "c",
            vec![GroupEvent {
                clock: 1,
                kind: GroupEventKind::NameChanged { name: "n".into() },
            }],
            &author,
        )],
        message: None,
    };
    for format in [PayloadFormat::Transit, PayloadFormat::Protobuf] {
        let bytes = encode_membership(format, &g5, &author, false);
        let app = decode_app(&bytes, &relay).unwrap();
        assert_eq!(app.format, format);
        assert_eq!(app.record, AppRecord::Membership(g5.clone()));
    }
}

#[test]
fn wrapper_signatures_and_bad_inputs_are_typed() {
    let (author, relay) = (key(4), public_key(&key(6)));
    let m = c4("hi", MessageType::PublicGroupUserMessage, "chat");
    // ApplicationMetadataMessage without a signature: the Whisper signer is the author.
    let payload = ChatMessage::from_c4(&m).encode_to_vec();
    let unsigned = ApplicationMetadataMessage {
        signature: vec![],
        payload: payload.clone(),
        message_type: 0,
    }
    .encode_to_vec();
    assert_eq!(decode_app(&unsigned, &relay).unwrap().author, relay);
    // A signature of the wrong length or that recovers nothing.
    for sig in [vec![1u8; 64], vec![0u8; 65]] {
        let bad = ApplicationMetadataMessage {
            signature: sig,
            payload: payload.clone(),
            message_type: 0,
        }
        .encode_to_vec();
        assert_eq!(decode_app(&bad, &relay), Err(ChatError::BadSignature));
    }
    // A StatusProtocolMessage whose payload was altered recovers someone else (the id and
    // author change); one whose signature is cut is refused.
    let spm = wrap_payload(&m.encode(), Some(&author));
    assert_eq!(
        decode_app(&spm, &relay).unwrap().author,
        public_key(&author)
    );
    let mut short = AnyWrapper::decode(spm.as_slice()).unwrap();
    short.v1_signature.pop();
    assert_eq!(
        decode_app(&short.encode_to_vec(), &relay),
        Err(ChatError::BadSignature)
    );
    // Not JSON, not protobuf; protobuf with no payload; a bad ChatMessage; JSON that is not
    // Transit; another Transit record.
    assert!(matches!(
        decode_app(&[0xff, 0xff, 0xff], &relay),
        Err(ChatError::Protobuf(_))
    ));
    assert!(matches!(
        decode_app(&[0x18, 0x01], &relay),
        Err(ChatError::Protobuf(_))
    ));
    let junk = wrap_application_metadata(&[0x0a, 0x05, 0x01], &author);
    assert!(matches!(
        decode_app(&junk, &relay),
        Err(ChatError::Protobuf(_))
    ));
    assert!(matches!(
        decode_app(b"[1,2", &relay),
        Err(ChatError::Json(_))
    ));
    let p2 = br#"["~#p2",["inst","desktop","name",null]]"#;
    assert_eq!(
        decode_app(p2, &relay).unwrap().record,
        AppRecord::OtherTransit("p2".into())
    );
    // Leading blanks before Transit are tolerated.
    let mut spaced = b" \n".to_vec();
    spaced.extend(m.encode());
    assert!(decode_app(&spaced, &relay).is_ok());
}

/// status-go v0.36.0 panics on the text `^ ` (its decoder reads it as the map marker at
/// index 0); hush reads every such input and never writes it at index 0.
#[test]
fn the_text_that_crashes_status_go_is_read_and_not_written_at_index_0() {
    let relay = public_key(&key(6));
    // What status-go's (and hush's codec) encoder writes for it: read back as "^ ".
    let escaped = br#"["~#c4",["~^ ","text/plain","~:public-group-user-message",1,2,["^ ","~:chat-id","c","~:text","~^ "]]]"#;
    let app = decode_app(escaped, &relay).unwrap();
    let AppRecord::Message(m) = app.record else {
        panic!()
    };
    assert_eq!((m.text.as_str(), m.content.text.as_str()), ("^ ", "^ "));
    // The unescaped form at index 0 is a malformed map: an error, not a panic.
    let raw =
        br#"["~#c4",["^ ","text/plain","~:public-group-user-message",1,2,["^ ","~:chat-id","c"]]]"#;
    assert!(decode_app(raw, &relay).is_err());
    // hush's sender leaves index 0 empty for that text; readers take the content text.
    let m = c4(
        GO_TRANSIT_PANIC_TEXT,
        MessageType::PublicGroupUserMessage,
        "c",
    );
    let bytes = encode_message(PayloadFormat::Transit, &m, &key(4), false);
    assert!(
        bytes.starts_with(br#"["~#c4",["","text/plain""#),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let AppRecord::Message(back) = decode_app(&bytes, &relay).unwrap().record else {
        panic!()
    };
    assert_eq!(back.content.text, "^ ");
    // Any other text keeps index 0.
    let other = encode_message(
        PayloadFormat::Transit,
        &c4("^  ", MessageType::UserMessage, "c"),
        &key(4),
        false,
    );
    assert!(other.starts_with(br#"["~#c4",["~^  ""#));
}

/// status-go v0.36.0's `persistentMessageHandler.chatID` dereferences nil on group updates;
/// hush gets g5 records with missing or null chat ids and refuses them with an error.
#[test]
fn group_updates_without_a_chat_id_are_errors() {
    let relay = public_key(&key(6));
    for bytes in [
        &br#"["~#g5",[null,["~#list",[]]]]"#[..],
        br#"["~#g5",[]]"#,
        br#"["~#g5",["c",["~#list",[["^ ","~:chat-id",null,"~:events",[]]]]]]"#,
        br#"["~#g5",["c",["~#list",[["^ ","~:events",[]]]]]]"#,
        br#"["~#g5",[null,null,null]]"#,
    ] {
        assert!(
            decode_app(bytes, &relay).is_err(),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

fn any_c4() -> impl Strategy<Value = C4Message> {
    (
        ".{0,30}",
        0u8..4,
        "[a-z0-9-]{0,20}",
        any::<u64>(),
        any::<u64>(),
        proptest::option::of("[0-9a-f]{0,8}"),
        proptest::option::of("[a-z.]{1,8}"),
    )
        .prop_map(|(text, t, chat, clock, ts, resp, ens)| C4Message {
            text: text.clone(),
            content_type: "text/plain".into(),
            message_type: match t {
                0 => MessageType::UserMessage,
                1 => MessageType::PublicGroupUserMessage,
                _ => MessageType::GroupUserMessage,
            },
            clock,
            timestamp_ms: ts,
            content: C4Content {
                chat_id: chat,
                text,
                response_to: resp.filter(|r| !r.is_empty()),
                name: ens,
                ..Default::default()
            },
        })
}

proptest! {
    /// Any bytes: a payload or a typed error, never a panic.
    #[test]
    fn decode_app_total(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let relay = public_key(&key(6));
        let _ = decode_app(&bytes, &relay);
        let _ = ChatMessage::decode(bytes.as_slice());
        let _ = ApplicationMetadataMessage::decode(bytes.as_slice());
    }

    /// Both forms round-trip, and every truncation and one-byte change of them decodes to a
    /// value or an error.
    #[test]
    fn both_forms_roundtrip_and_truncations(m in any_c4(), protobuf in any::<bool>(), pos in any::<usize>(), byte in any::<u8>()) {
        prop_assume!(m.text != GO_TRANSIT_PANIC_TEXT);
        let (author, relay) = (key(4), public_key(&key(6)));
        let format = if protobuf { PayloadFormat::Protobuf } else { PayloadFormat::Transit };
        let bytes = encode_message(format, &m, &author, false);
        let app = decode_app(&bytes, &relay).unwrap();
        prop_assert_eq!(app.record, AppRecord::Message(m));
        for cut in 0..bytes.len() {
            let _ = decode_app(&bytes[..cut], &relay);
        }
        let mut changed = bytes.clone();
        let i = pos % changed.len();
        changed[i] = byte;
        let _ = decode_app(&changed, &relay);
    }
}
