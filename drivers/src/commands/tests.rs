use super::*;

fn node(c: Command) -> Result<Option<StdinCommand>, CommandError> {
    Ok(Some(StdinCommand::Node(c)))
}

#[test]
fn parses_each_command() {
    assert_eq!(
        parse_line("/join status\n"),
        node(Command::JoinPublicChat {
            name: "status".into()
        })
    );
    assert_eq!(
        parse_line("  /leave status  "),
        node(Command::LeavePublicChat {
            name: "status".into()
        })
    );
    assert_eq!(
        parse_line("/send e2e hello  from   A\r\n"),
        node(Command::SendPublicMessage {
            chat: "e2e".into(),
            text: "hello  from   A".into()
        })
    );
    assert_eq!(parse_line("/quit"), Ok(Some(StdinCommand::Quit)));
    assert_eq!(parse_line(""), Ok(None));
    assert_eq!(parse_line("   \n"), Ok(None));
}

#[test]
fn errors_say_what_is_wrong() {
    assert_eq!(
        parse_line("hello"),
        Err(CommandError::Unknown("hello".into()))
    );
    assert_eq!(
        parse_line("/jion x"),
        Err(CommandError::Unknown("/jion".into()))
    );
    assert_eq!(
        parse_line("/join"),
        Err(CommandError::MissingArgument {
            command: "/join",
            argument: "chat name"
        })
    );
    assert_eq!(
        parse_line("/send chat"),
        Err(CommandError::MissingArgument {
            command: "/send",
            argument: "message text"
        })
    );
    assert_eq!(
        parse_line("/join a b"),
        Err(CommandError::Unexpected {
            command: "/join",
            extra: "b".into()
        })
    );
    assert_eq!(
        parse_line("/quit now"),
        Err(CommandError::Unexpected {
            command: "/quit",
            extra: "now".into()
        })
    );
}

proptest::proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,80}") {
        let _ = parse_line(&s);
    }

    #[test]
    fn send_keeps_text(chat in "[a-z0-9-]{1,20}", text in "[^\\s][^\n\r]{0,60}") {
        let text = text.trim_end().to_string();
        proptest::prop_assume!(!text.is_empty());
        let parsed = parse_line(&format!("/send {chat} {text}\n"));
        proptest::prop_assert_eq!(parsed, node(Command::SendPublicMessage { chat, text }));
    }
}

#[test]
fn request_history_command() {
    assert_eq!(
        parse_line("/request status"),
        Ok(Some(StdinCommand::RequestHistory {
            chat: "status".into(),
            since_secs: None
        }))
    );
    assert_eq!(
        parse_line("/request status 1575158400\n"),
        Ok(Some(StdinCommand::RequestHistory {
            chat: "status".into(),
            since_secs: Some(1_575_158_400)
        }))
    );
    assert!(matches!(
        parse_line("/request"),
        Err(CommandError::MissingArgument { .. })
    ));
    assert!(matches!(
        parse_line("/request status yesterday"),
        Err(CommandError::Invalid { .. })
    ));
    assert!(matches!(
        parse_line("/request status 1 2"),
        Err(CommandError::Unexpected { .. })
    ));
}

const KEY: &str = "0x04aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn key_bytes() -> NodePublicKey {
    let mut k = [0xaa; 64];
    k[32..].fill(0xbb);
    k
}

#[test]
fn parses_conversation_commands() {
    assert_eq!(
        parse_line(&format!("/dm {KEY} hi  there")),
        node(Command::SendDirect {
            to: key_bytes(),
            text: "hi  there".into()
        })
    );
    // The key without 0x, and without 04.
    assert_eq!(
        parse_line(&format!("/dm {} x", &KEY[2..])),
        parse_line(&format!("/dm {} x", &KEY[4..]))
    );
    assert_eq!(
        parse_line(&format!("/group create friends {KEY} {KEY}")),
        node(Command::CreateGroup {
            name: "friends".into(),
            members: vec![key_bytes(), key_bytes()]
        })
    );
    assert_eq!(
        parse_line("/group create solo"),
        node(Command::CreateGroup {
            name: "solo".into(),
            members: vec![]
        })
    );
    assert_eq!(
        parse_line(&format!("/group add friends {KEY}")),
        Ok(Some(StdinCommand::GroupAdd {
            group: "friends".into(),
            member: key_bytes()
        }))
    );
    assert_eq!(
        parse_line("/group send friends hello all"),
        Ok(Some(StdinCommand::GroupSend {
            group: "friends".into(),
            text: "hello all".into()
        }))
    );
    assert_eq!(
        parse_line("/history friends"),
        Ok(Some(StdinCommand::History {
            chat: "friends".into()
        }))
    );
    assert_eq!(parse_line("/whoami"), Ok(Some(StdinCommand::WhoAmI)));
    assert_eq!(parse_line("/chats "), Ok(Some(StdinCommand::Chats)));
}

#[test]
fn conversation_command_errors() {
    assert!(matches!(
        parse_line("/dm 0x04abcd hi"),
        Err(CommandError::Invalid { command: "/dm", .. })
    ));
    assert!(matches!(
        parse_line(&format!("/dm {KEY}")),
        Err(CommandError::MissingArgument {
            argument: "message text",
            ..
        })
    ));
    assert!(matches!(
        parse_line("/dm"),
        Err(CommandError::MissingArgument {
            argument: "public key",
            ..
        })
    ));
    assert!(matches!(
        parse_line("/group"),
        Err(CommandError::MissingArgument {
            command: "/group",
            ..
        })
    ));
    assert!(matches!(
        parse_line("/group kick x"),
        Err(CommandError::Invalid {
            command: "/group",
            ..
        })
    ));
    assert!(matches!(
        parse_line(&format!("/group create g {KEY} nope")),
        Err(CommandError::Invalid { .. })
    ));
    assert!(matches!(
        parse_line(&format!("/group add g {KEY} extra")),
        Err(CommandError::Unexpected { .. })
    ));
    assert!(matches!(
        parse_line("/group send g"),
        Err(CommandError::MissingArgument { .. })
    ));
    assert!(matches!(
        parse_line("/whoami now"),
        Err(CommandError::Unexpected {
            command: "/whoami",
            ..
        })
    ));
    assert!(matches!(
        parse_line("/history"),
        Err(CommandError::MissingArgument { .. })
    ));
}

#[test]
fn parses_group_changes() {
    let change = |line: &str| match parse_line(line) {
        Ok(Some(StdinCommand::GroupChange { group, change })) => (group, change),
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        change(&format!("/group remove g {KEY}")),
        ("g".into(), GroupChange::Remove(key_bytes()))
    );
    assert_eq!(
        change(&format!("/group admin g {KEY} {KEY}")),
        (
            "g".into(),
            GroupChange::Admins(vec![key_bytes(), key_bytes()])
        )
    );
    assert_eq!(
        change("/group rename g new  name"),
        ("g".into(), GroupChange::Rename("new  name".into()))
    );
    assert_eq!(change("/group leave g"), ("g".into(), GroupChange::Leave));
    assert_eq!(change("/group join g"), ("g".into(), GroupChange::Join));
    assert!(parse_line("/group join g now").is_err());
    assert!(parse_line("/group join").is_err());
    assert!(parse_line("/group leave g now").is_err());
    assert!(parse_line("/group rename g").is_err());
    assert!(parse_line("/group admin g").is_err());
    assert!(parse_line("/group remove").is_err());
}

#[test]
fn parses_device_commands() {
    assert_eq!(
        parse_line("/pair abc-1"),
        node(Command::PairDevice {
            installation_id: "abc-1".into(),
            enabled: true
        })
    );
    assert_eq!(
        parse_line("/unpair abc-1"),
        node(Command::PairDevice {
            installation_id: "abc-1".into(),
            enabled: false
        })
    );
    assert_eq!(parse_line("/devices"), Ok(Some(StdinCommand::Devices)));
    assert_eq!(parse_line("/stats"), Ok(Some(StdinCommand::Stats)));
    assert!(parse_line("/stats now").is_err());
    assert!(parse_line("/pair").is_err());
    assert!(parse_line("/pair a b").is_err());
    assert!(parse_line("/devices x").is_err());
}

proptest::proptest! {
    #[test]
    fn public_key_parser_is_total(s in "\\PC{0,140}", key in proptest::array::uniform32(proptest::num::u8::ANY)) {
        let _ = parse_public_key(&s);
        // Truncations never panic; those too short to hold X‖Y never parse ("0x" + 128 hex
        // digits, i.e. a cut of 130, is a bare X‖Y and does).
        let full = format!("0x04{}{}", hex::encode(key), hex::encode(key));
        for cut in 0..full.len() {
            let parsed = parse_public_key(&full[..cut]);
            if cut < 130 {
                proptest::prop_assert!(parsed.is_none());
            }
        }
        proptest::prop_assert!(parse_public_key(&full).is_some());
    }
}

#[test]
fn parses_format_command() {
    use hush_core::chat::format::FormatSetting;
    use hush_core::node::ChatTarget;
    let key = key_bytes();
    let hexkey = format!("0x04{}", hex::encode(key));
    assert_eq!(
        parse_line("/format public status protobuf"),
        node(Command::SetChatFormat {
            chat: ChatTarget::Public("status".into()),
            format: Some(FormatSetting::Protobuf),
        })
    );
    assert_eq!(
        parse_line(&format!("/format dm {hexkey} transit")),
        node(Command::SetChatFormat {
            chat: ChatTarget::Direct(key),
            format: Some(FormatSetting::Transit),
        })
    );
    assert_eq!(
        parse_line("/format group friends default"),
        node(Command::SetChatFormat {
            chat: ChatTarget::Group("friends".into()),
            format: None,
        })
    );
    assert_eq!(
        parse_line("/format group friends auto"),
        node(Command::SetChatFormat {
            chat: ChatTarget::Group("friends".into()),
            format: Some(FormatSetting::Auto),
        })
    );
    for bad in [
        "/format",
        "/format public",
        "/format public status",
        "/format room status auto",
        "/format public status json",
        "/format dm 0x04zz auto",
        "/format public status auto extra",
    ] {
        assert!(parse_line(bad).is_err(), "{bad}");
    }
}

/// Issue 16 item 8: a 1 MB unknown command (or bad argument) is quoted back cut to
/// [`MAX_ECHOED_INPUT_CHARS`] characters with a marker, not whole.
#[test]
fn errors_quote_at_most_a_bounded_prefix_of_the_input() {
    let huge = "x".repeat(1_000_000);
    for line in [
        format!("/{huge}"),
        format!("/whoami {huge}"),
        format!("/request chat {huge}"),
        format!("/dm {huge} hi"),
        format!("/group {huge}"),
    ] {
        let msg = parse_line(&line).unwrap_err().to_string();
        assert!(msg.len() < 400, "{} bytes: {}", msg.len(), &msg[..400]);
        assert!(msg.contains(" more bytes)"), "{msg}");
    }
    // Short input is quoted whole, without a marker.
    let msg = parse_line("/jion x").unwrap_err().to_string();
    assert!(msg.starts_with("unknown command \"/jion\""), "{msg}");
    assert!(!msg.contains("more bytes"), "{msg}");
}

#[test]
fn echo_cuts_on_a_character_boundary_and_counts_the_rest() {
    let s = "é".repeat(MAX_ECHOED_INPUT_CHARS + 3);
    let echoed = echo_input(&s);
    assert_eq!(
        echoed,
        format!("{:?}…(6 more bytes)", "é".repeat(MAX_ECHOED_INPUT_CHARS))
    );
    assert_eq!(echo_input("short"), "\"short\"");
    assert_eq!(cut_at_chars("abcdef", 3), "abc…(3 more bytes)");
    assert_eq!(cut_at_chars("abc", 3), "abc");
}
