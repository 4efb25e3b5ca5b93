use super::*;

fn message() -> ChatMessage {
    let mut from = [0x11u8; 65];
    from[0] = 0x04;
    ChatMessage {
        chat: "e2e".into(),
        from,
        text: "hello \"A\"\n".into(),
        clock: 7,
        timestamp_ms: 1_575_000_000_123,
        message_id: [0xab; 32],
    }
}

#[test]
fn json_line_has_the_documented_fields() {
    let line = message_json_line(&message(), 1_575_000_001_456);
    assert!(!line.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["chat"], "e2e");
    assert_eq!(v["from"], format!("0x04{}", "11".repeat(64)));
    assert_eq!(v["text"], "hello \"A\"\n");
    assert_eq!(v["clock"], 7);
    assert_eq!(v["timestamp"], 1_575_000_000_123u64);
    assert_eq!(v["received_at"], 1_575_000_001_456u64);
    assert_eq!(v["kind"], "public");
    assert_eq!(v["message_id"], format!("0x{}", "ab".repeat(32)));
    assert_eq!(v.as_object().unwrap().len(), 8);
    assert!(line.starts_with("{\"chat\":\"e2e\",\"kind\":\"public\",\"from\":\"0x04"));
}

#[test]
fn group_and_reply_lines() {
    let line = kind_json_line(&message(), "group", Some("friends"), Some("history"), None);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    // A history reply does not know when the message was received: no field, not a guess.
    assert!(v.get("received_at").is_none());
    assert_eq!(v["kind"], "group");
    assert_eq!(v["name"], "friends");
    assert_eq!(v["reply"], "history");
    assert!(line.starts_with("{\"reply\":\"history\""));
    let r = reply_json_line("whoami", &[("public_key", "0x04ab")]);
    let v: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["reply"], "whoami");
    assert_eq!(v["public_key"], "0x04ab");
}

#[test]
fn persist_line_adds_the_id() {
    let v: serde_json::Value =
        serde_json::from_str(&persist_json_line(&message(), 1_575_000_001_456)).unwrap();
    assert_eq!(v["message_id"], format!("0x{}", "ab".repeat(32)));
    assert_eq!(v["timestamp"], 1_575_000_000_123u64);
    assert_eq!(v["received_at"], 1_575_000_001_456u64);
    assert_eq!(v["from"].as_str().unwrap().len(), 132);
}

#[test]
fn human_line_is_one_line() {
    assert_eq!(
        message_human_line(&message()),
        "#e2e <0x0411111111…> hello \"A\" "
    );
}

#[test]
fn peer_connected_line_starts_with_the_prefix() {
    let e = Event::PeerConnected {
        conn: 3,
        remote: [0x22; 64],
        client_id: "hush/v0.1.0".into(),
    };
    let line = status_line(&e).unwrap();
    assert!(line.starts_with(PEER_CONNECTED_PREFIX));
    assert!(line.contains(&"22".repeat(64)));
    assert_eq!(status_line(&Event::MessageReceived(message())), None);
}
