use super::*;
use proptest::prelude::*;

fn host(b: u8) -> FloodHost {
    FloodHost::new(FloodConfig::default(), [b; 32], Time(0)).unwrap()
}

fn drain(h: &mut FloodHost) -> Vec<Action> {
    std::iter::from_fn(|| h.poll_action()).collect()
}

#[test]
fn rejects_some_keys_like_the_node() {
    assert!(matches!(
        FloodHost::new(FloodConfig::default(), [0; 32], Time(0)),
        Err(NodeError::InvalidSecretKey)
    ));
}

#[test]
fn message_split_across_chunks_is_received_once_and_reflooded() {
    let mut a = host(1);
    let mut b = host(2);
    b.handle_connection(Time(0), 1, Direction::Inbound).unwrap();
    b.handle_connection(Time(0), 2, Direction::Inbound).unwrap();
    b.handle_command(Time(0), Command::JoinPublicChat { name: "c".into() })
        .unwrap();
    drain(&mut b);
    a.handle_connection(Time(0), 9, Direction::Inbound).unwrap();
    drain(&mut a);
    a.handle_command(
        Time(5),
        Command::SendPublicMessage {
            chat: "c".into(),
            text: "hi".into(),
        },
    )
    .unwrap();
    let out = drain(&mut a);
    assert!(matches!(&out[0], Action::Event(Event::MessageSent(m)) if m.text == "hi"));
    let Action::Send { bytes, .. } = &out[1] else {
        panic!("expected a send")
    };
    let (first, second) = bytes.split_at(5);
    b.handle_bytes(Time(6), 1, first);
    assert!(drain(&mut b).is_empty());
    b.handle_bytes(Time(7), 1, second);
    let out = drain(&mut b);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], Action::Send { conn: 2, .. }));
    assert!(
        matches!(&out[1], Action::Event(Event::MessageReceived(m)) if m.text == "hi" && m.timestamp_ms == 5)
    );
    // The same frame again is ignored.
    b.handle_bytes(Time(8), 2, bytes);
    assert!(drain(&mut b).is_empty());
}

#[test]
fn garbage_closes_the_connection() {
    let mut b = host(2);
    b.handle_connection(Time(0), 1, Direction::Inbound).unwrap();
    drain(&mut b);
    b.handle_bytes(Time(1), 1, &[9, 0, 0]);
    assert_eq!(drain(&mut b), vec![Action::Close { conn: 1 }]);
}

#[test]
fn ping_timer_is_idempotent() {
    let mut h = FloodHost::new(
        FloodConfig {
            ping_interval_ms: Some(100),
        },
        [3; 32],
        Time(0),
    )
    .unwrap();
    h.handle_connection(Time(0), 1, Direction::Inbound).unwrap();
    drain(&mut h);
    assert_eq!(h.poll_timeout(), Some(Time(100)));
    h.handle_timeout(Time(50));
    assert!(drain(&mut h).is_empty());
    h.handle_timeout(Time(100));
    assert_eq!(drain(&mut h).len(), 1);
    h.handle_timeout(Time(100));
    assert!(drain(&mut h).is_empty());
    assert_eq!(h.poll_timeout(), Some(Time(200)));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut h = host(4);
        h.handle_connection(Time(0), 1, Direction::Inbound).unwrap();
        for c in &chunks {
            h.handle_bytes(Time(1), 1, c);
        }
        drain(&mut h);
    }
}
