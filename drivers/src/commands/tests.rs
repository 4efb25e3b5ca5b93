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
