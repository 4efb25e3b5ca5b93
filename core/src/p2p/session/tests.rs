use super::*;
use crate::ecies::{public_key, random_secret_key};
use crate::p2p::rlpx::handshake::Initiator as RawInitiator;
use crate::rng::{child_seed, seed_from_u64};
use proptest::prelude::*;
use rand_core::RngCore;

const T0: Time = Time(1_570_000_000_000);

struct Node {
    s: Session,
    key: SecretKey,
    events: Vec<Event>,
    closed: bool,
}

impl Node {
    /// Drains actions: returns the transmitted bytes, records events and Close.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(a) = self.s.poll_action() {
            assert!(!self.closed, "action after Close: {a:?}");
            match a {
                Action::Transmit(b) => out.extend(b),
                Action::Event(e) => {
                    assert!(
                        !matches!(self.events.last(), Some(Event::Disconnected { .. })),
                        "event after Disconnected"
                    );
                    self.events.push(e)
                }
                Action::Close => self.closed = true,
            }
        }
        out
    }

    fn pubkey(&self) -> PublicKey {
        public_key(&self.key)
    }

    fn disconnected(&self) -> Option<(DisconnectReason, bool)> {
        match self.events.last() {
            Some(Event::Disconnected { reason, by_peer }) => Some((*reason, *by_peer)),
            _ => None,
        }
    }

    fn messages(&self) -> Vec<(String, u64, Vec<u8>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message {
                    capability,
                    code,
                    payload,
                } => Some((capability.clone(), *code, payload.clone())),
                _ => None,
            })
            .collect()
    }
}

fn config(client: &str) -> Arc<Config> {
    Arc::new(Config {
        client_id: client.into(),
        ..Config::default()
    })
}

fn pair_with(seed: u64, ca: Arc<Config>, cb: Arc<Config>) -> (Node, Node) {
    let mut rng = rng_from_seed(seed_from_u64(seed));
    let ka = random_secret_key(&mut rng);
    let kb = random_secret_key(&mut rng);
    let a = Session::new(
        ca,
        ka,
        Role::Initiator {
            remote: public_key(&kb),
        },
        child_seed(&mut rng),
        T0,
    );
    let b = Session::new(cb, kb, Role::Responder, child_seed(&mut rng), T0);
    (
        Node {
            s: a,
            key: ka,
            events: vec![],
            closed: false,
        },
        Node {
            s: b,
            key: kb,
            events: vec![],
            closed: false,
        },
    )
}

fn pair(seed: u64) -> (Node, Node) {
    pair_with(seed, config("alice"), config("bob"))
}

/// Shuttles bytes both ways in `chunk`-sized pieces until neither side has anything to send.
fn pump(a: &mut Node, b: &mut Node, now: Time, chunk: usize) {
    for _ in 0..1000 {
        let from_a = a.drain();
        let from_b = b.drain();
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for piece in from_a.chunks(chunk) {
            if !b.closed {
                b.s.handle_input(now, piece);
            }
        }
        for piece in from_b.chunks(chunk) {
            if !a.closed {
                a.s.handle_input(now, piece);
            }
        }
    }
    panic!("pump did not settle");
}

fn established(seed: u64) -> (Node, Node) {
    let (mut a, mut b) = pair(seed);
    pump(&mut a, &mut b, T0, usize::MAX);
    assert!(a.s.is_established() && b.s.is_established());
    (a, b)
}

#[test]
fn handshake_establishes_both_sides() {
    let (a, b) = established(1);
    let shh = vec![Capability::new("shh", 6, 128)];
    assert_eq!(
        a.events,
        vec![Event::Established {
            remote: b.pubkey(),
            client_id: "bob".into(),
            capabilities: shh.clone()
        }]
    );
    assert_eq!(
        b.events,
        vec![Event::Established {
            remote: a.pubkey(),
            client_id: "alice".into(),
            capabilities: shh
        }]
    );
    assert_eq!(b.s.remote_public_key(), Some(a.pubkey()));
    assert_eq!(a.s.remote_public_key(), Some(b.pubkey()));
    assert_eq!(a.s.shared_capabilities()["shh"].offset, 0x10);
    assert_eq!(
        a.s.poll_timeout(),
        Some(T0.plus_millis(DEFAULT_PING_INTERVAL_MS))
    );
}

#[test]
fn messages_both_ways_every_chunking() {
    for chunk in [1usize, 7, 16, 33, 500, usize::MAX] {
        let (mut a, mut b) = pair(2);
        pump(&mut a, &mut b, T0, chunk);
        assert!(
            a.s.is_established() && b.s.is_established(),
            "chunk {chunk}"
        );
        a.s.send(T0, "shh", 0, b"status").unwrap();
        a.s.send(T0, "shh", 127, &[0xab; 3000]).unwrap();
        b.s.send(T0, "shh", 1, b"").unwrap();
        pump(&mut a, &mut b, T0, chunk);
        assert_eq!(
            b.messages(),
            vec![
                ("shh".into(), 0, b"status".to_vec()),
                ("shh".into(), 127, vec![0xab; 3000])
            ],
            "chunk {chunk}"
        );
        assert_eq!(
            a.messages(),
            vec![("shh".into(), 1, vec![])],
            "chunk {chunk}"
        );
    }
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let (mut a, mut b) = pair(3);
        let mut wire = a.drain();
        b.s.handle_input(T0, &wire);
        wire.extend(b.drain());
        wire
    };
    assert_eq!(run(), run());
}

#[test]
fn send_errors() {
    let (mut a, mut b) = pair(4);
    assert_eq!(
        a.s.send(T0, "shh", 0, b""),
        Err(SessionError::NotEstablished)
    );
    pump(&mut a, &mut b, T0, usize::MAX);
    assert_eq!(
        a.s.send(T0, "eth", 0, b""),
        Err(SessionError::UnknownCapability { name: "eth".into() })
    );
    assert_eq!(
        a.s.send(T0, "shh", 128, b""),
        Err(SessionError::CodeOutOfRange {
            code: 128,
            length: 128
        })
    );
    let too_big = vec![0u8; MAX_MESSAGE_SIZE_BYTES + 1];
    assert!(matches!(
        a.s.send(T0, "shh", 0, &too_big),
        Err(SessionError::MessageTooLarge { .. })
    ));
    a.s.disconnect(T0, DisconnectReason::Requested);
    assert_eq!(
        a.s.send(T0, "shh", 0, b""),
        Err(SessionError::NotEstablished)
    );
}

#[test]
fn ping_pong_with_fake_clock() {
    let (mut a, mut b) = established(5);
    let mut now = T0;
    for _ in 0..5 {
        now = a.s.poll_timeout().unwrap().min(b.s.poll_timeout().unwrap());
        a.s.handle_timeout(now);
        a.s.handle_timeout(now); // idempotent
        b.s.handle_timeout(now);
        pump(&mut a, &mut b, now, usize::MAX);
        assert!(a.s.is_established() && b.s.is_established());
        // The pong arrived: the next deadline is the next ping, not a pong timeout.
        assert_eq!(
            a.s.poll_timeout(),
            Some(now.plus_millis(DEFAULT_PING_INTERVAL_MS))
        );
    }
    assert_eq!(now, T0.plus_millis(5 * DEFAULT_PING_INTERVAL_MS));
    assert_eq!(a.events.len(), 1);
}

#[test]
fn pong_timeout_disconnects_with_read_timeout() {
    let (mut a, mut b) = established(6);
    let ping_at = T0.plus_millis(DEFAULT_PING_INTERVAL_MS);
    a.s.handle_timeout(ping_at);
    let ping = a.drain();
    assert!(!ping.is_empty());
    // b's pong is lost.
    b.s.handle_input(ping_at, &ping);
    let _lost = b.drain();
    let deadline = ping_at.plus_millis(DEFAULT_PONG_TIMEOUT_MS);
    assert_eq!(
        a.s.poll_timeout(),
        Some(ping_at.plus_millis(DEFAULT_PING_INTERVAL_MS))
    );
    let mut now = ping_at;
    while now < deadline {
        now = a.s.poll_timeout().unwrap();
        a.s.handle_timeout(now);
        let from_a = a.drain();
        if now < deadline {
            assert!(a.disconnected().is_none());
        } else {
            assert_eq!(
                a.disconnected(),
                Some((DisconnectReason::ReadTimeout, false))
            );
            assert!(a.closed);
        }
        // Everything a sends reaches b; everything b answers is lost.
        b.s.handle_input(now, &from_a);
        b.drain();
    }
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ReadTimeout, true))
    );
    assert!(b.closed);
    assert_eq!(a.s.poll_timeout(), None);
}

#[test]
fn clean_disconnect_seen_by_both() {
    let (mut a, mut b) = established(7);
    a.s.disconnect(T0, DisconnectReason::TooManyPeers);
    a.s.disconnect(T0, DisconnectReason::Quitting); // second call: nothing
    pump(&mut a, &mut b, T0, usize::MAX);
    assert_eq!(
        a.disconnected(),
        Some((DisconnectReason::TooManyPeers, false))
    );
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::TooManyPeers, true))
    );
    assert!(a.closed && b.closed);
    assert!(!a.s.is_established() && !b.s.is_established());
    assert_eq!(DisconnectReason::TooManyPeers.to_string(), "too many peers");
}

#[test]
fn handshake_timeout_closes() {
    let (mut a, _) = pair(8);
    assert!(!a.drain().is_empty()); // auth
    let deadline = T0.plus_millis(DEFAULT_HANDSHAKE_TIMEOUT_MS);
    assert_eq!(a.s.poll_timeout(), Some(deadline));
    a.s.handle_timeout(T0.plus_millis(1));
    assert!(a.drain().is_empty());
    a.s.handle_timeout(deadline);
    assert!(
        a.drain().is_empty(),
        "no frames before the handshake: nothing to send"
    );
    assert_eq!(
        a.disconnected(),
        Some((DisconnectReason::ReadTimeout, false))
    );
    assert!(a.closed);
}

#[test]
fn hello_phase_times_out_too() {
    let (mut a, mut b) = pair(9);
    let auth = a.drain();
    b.s.handle_input(T0, &auth);
    let _ack_and_hello_lost = b.drain();
    let deadline = T0.plus_millis(DEFAULT_HANDSHAKE_TIMEOUT_MS);
    b.s.handle_timeout(deadline);
    let bye = b.drain();
    assert!(!bye.is_empty(), "b has frames up: best-effort Disconnect");
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ReadTimeout, false))
    );
}

#[test]
fn bad_mac_after_handshake() {
    let (mut a, mut b) = established(10);
    a.s.send(T0, "shh", 0, b"hello").unwrap();
    let mut wire = a.drain();
    wire[40] ^= 0x80;
    b.s.handle_input(T0, &wire);
    let bye = b.drain();
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
    assert!(b.closed && b.messages().is_empty());
    a.s.handle_input(T0, &bye);
    a.drain();
    assert_eq!(
        a.disconnected(),
        Some((DisconnectReason::ProtocolError, true))
    );
}

#[test]
fn garbage_after_handshake() {
    let (_, mut b) = established(11);
    b.s.handle_input(T0, &[0x42; 100]);
    b.drain();
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
}

#[test]
fn garbage_instead_of_auth() {
    let (_, mut b) = pair(12);
    let mut garbage = vec![0x01, 0x40]; // EIP-8 size 320
    garbage.extend([0x55; 400]);
    b.s.handle_input(T0, &garbage);
    assert!(b.drain().is_empty(), "no ack, no frames");
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
    // A size prefix below the legacy length is refused at once (size underflow).
    let (_, mut b) = pair(12);
    b.s.handle_input(T0, &[0u8; LEGACY_AUTH]);
    b.drain();
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
}

const LEGACY_AUTH: usize = crate::p2p::rlpx::handshake::LEGACY_AUTH_PACKET_BYTES;

#[test]
fn oversize_frame_is_refused() {
    let small = Arc::new(Config {
        max_message_size: 1000,
        ..Config::default()
    });
    let (mut a, mut b) = pair_with(13, config("alice"), small);
    pump(&mut a, &mut b, T0, usize::MAX);
    let mut big = vec![0u8; 20_000];
    rng_from_seed([9; 32]).fill_bytes(&mut big); // incompressible
    a.s.send(T0, "shh", 0, &big).unwrap();
    let wire = a.drain();
    // Only the header is needed for b to refuse.
    b.s.handle_input(T0, &wire[..32]);
    b.drain();
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
}

#[test]
fn snappy_bomb_is_refused_before_inflating() {
    let small = Arc::new(Config {
        max_message_size: 1000,
        ..Config::default()
    });
    let (mut a, mut b) = pair_with(14, config("alice"), small);
    pump(&mut a, &mut b, T0, usize::MAX);
    // Compresses to a few hundred bytes (fits the frame limit) but inflates past 1000.
    a.s.send(T0, "shh", 0, &[0u8; 5000]).unwrap();
    let wire = a.drain();
    b.s.handle_input(T0, &wire);
    b.drain();
    assert!(b.messages().is_empty());
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
}

#[test]
fn dialing_the_wrong_key() {
    let mut rng = rng_from_seed(seed_from_u64(15));
    let ka = random_secret_key(&mut rng);
    let kb = random_secret_key(&mut rng);
    let kc = random_secret_key(&mut rng);
    // A dials C's key but reaches B: B cannot decrypt the auth.
    let mut a = Node {
        s: Session::new(
            config("a"),
            ka,
            Role::Initiator {
                remote: public_key(&kc),
            },
            [1; 32],
            T0,
        ),
        key: ka,
        events: vec![],
        closed: false,
    };
    let mut b = Node {
        s: Session::new(config("b"), kb, Role::Responder, [2; 32], T0),
        key: kb,
        events: vec![],
        closed: false,
    };
    pump(&mut a, &mut b, T0, usize::MAX);
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
    assert!(a.events.is_empty());
    a.s.handle_timeout(T0.plus_millis(DEFAULT_HANDSHAKE_TIMEOUT_MS));
    a.drain();
    assert_eq!(
        a.disconnected(),
        Some((DisconnectReason::ReadTimeout, false))
    );
}

/// A hand-driven peer: raw handshake + frame codec, so Hellos can be forged.
fn raw_dial(seed: u64, hello: impl FnOnce(&[u8; 64]) -> Hello) -> Node {
    let mut rng = rng_from_seed(seed_from_u64(seed));
    let ka = random_secret_key(&mut rng);
    let kb = random_secret_key(&mut rng);
    let mut b = Node {
        s: Session::new(config("b"), kb, Role::Responder, [3; 32], T0),
        key: kb,
        events: vec![],
        closed: false,
    };
    let init = RawInitiator::new(&mut rng, ka, public_key(&kb));
    b.s.handle_input(T0, init.auth_packet());
    let reply = b.drain();
    let (ack, _, used) = init.read_ack(&reply).unwrap().unwrap();
    let secrets = init.finish(&ack, &reply[..used]);
    let mut codec = FrameCodec::new(secrets, MAX_FRAME_SIZE_BYTES);
    let mut rest = reply[used..].to_vec();
    let (code, _their_hello) = codec.open(&mut rest).unwrap().unwrap();
    assert_eq!(code, HELLO);
    let mut out = Vec::new();
    codec
        .seal(
            HELLO,
            &encode_hello(&hello(&ecies::pubkey_to_wire(&public_key(&ka)))),
            &mut out,
        )
        .unwrap();
    b.s.handle_input(T0, &out);
    b.drain();
    b
}

fn hello_with(id: &[u8], caps: &[(&str, u64)]) -> Hello {
    Hello {
        version: 5,
        client_id: "forger".into(),
        capabilities: caps.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        listen_port: 0,
        node_id: id.to_vec(),
        extra_elements: 0,
    }
}

#[test]
fn hello_validation() {
    let b = raw_dial(16, |id| hello_with(id, &[("shh", 6)]));
    assert!(b.s.is_established());
    let b = raw_dial(17, |_| hello_with(&[7u8; 64], &[("shh", 6)]));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::UnexpectedIdentity, false))
    );
    let b = raw_dial(18, |_| hello_with(&[0u8; 64], &[("shh", 6)]));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::InvalidIdentity, false))
    );
    let b = raw_dial(19, |id| hello_with(&id[..63], &[("shh", 6)]));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::InvalidIdentity, false))
    );
    let b = raw_dial(20, |id| hello_with(id, &[("shh", 5), ("eth", 63)]));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::UselessPeer, false))
    );
    let b = raw_dial(21, |id| {
        let mut h = hello_with(id, &[("shh", 6)]);
        h.client_id = "x".repeat(MAX_HELLO_BYTES);
        h
    });
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
}

#[test]
fn useless_peer_between_sessions() {
    let les = Arc::new(Config {
        capabilities: vec![Capability::new("les", 2, 21)],
        ..Config::default()
    });
    let (mut a, mut b) = pair_with(22, config("a"), les);
    pump(&mut a, &mut b, T0, usize::MAX);
    assert_eq!(
        a.disconnected().map(|d| d.0),
        Some(DisconnectReason::UselessPeer)
    );
    assert_eq!(
        b.disconnected().map(|d| d.0),
        Some(DisconnectReason::UselessPeer)
    );
}

#[test]
fn eip8_hello_vector_decodes() {
    let v: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/vectors/devp2p_hello_eip8.json"
    )))
    .unwrap();
    let payload = hex::decode(v["hello_payload_rlp"].as_str().unwrap()).unwrap();
    let hello = decode_hello(&payload).unwrap();
    let d = &v["decoded"];
    assert_eq!(hello.version, d["protocolVersion"].as_u64().unwrap());
    assert_eq!(hello.client_id, d["clientId"].as_str().unwrap());
    assert_eq!(
        hello.capabilities,
        vec![("eth".to_string(), 61), ("mork".to_string(), 22)]
    );
    assert_eq!(hello.listen_port, 9999);
    assert_eq!(hex::encode(&hello.node_id), d["nodeId"].as_str().unwrap());
    assert_eq!(hello.extra_elements, 3);
}

#[test]
fn capability_matching_as_geth() {
    let local = vec![
        Capability::new("shh", 6, 128),
        Capability::new("shh", 5, 10),
        Capability::new("eth", 63, 17),
        Capability::new("aaa", 1, 3),
    ];
    let remote: Vec<(String, u64)> = [("shh", 6), ("eth", 63), ("shh", 5), ("zzz", 1), ("eth", 62)]
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .collect();
    let m = match_capabilities(&local, &remote);
    assert_eq!(m.len(), 2);
    assert_eq!((m["eth"].offset, m["eth"].capability.version), (0x10, 63));
    // shh/5 took 0x21..0x2b, then shh/6 replaced it at the same offset.
    assert_eq!((m["shh"].offset, m["shh"].capability.version), (0x21, 6));
    assert!(match_capabilities(&local, &[]).is_empty());
}

#[test]
fn disconnect_payload_forms() {
    assert_eq!(
        decode_disconnect(&encode_disconnect(DisconnectReason::Quitting)),
        DisconnectReason::Quitting
    );
    assert_eq!(decode_disconnect(&[0x04]), DisconnectReason::TooManyPeers); // bare int
    assert_eq!(decode_disconnect(&[0xc0]), DisconnectReason::Requested);
    assert_eq!(decode_disconnect(&[]), DisconnectReason::Requested);
    assert_eq!(
        decode_disconnect(&[0xc1, 0x33]),
        DisconnectReason::ProtocolError
    );
    for code in 0..=0x10u64 {
        if let Some(r) = DisconnectReason::from_code(code) {
            assert_eq!(u64::from(r.code()), code);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_into_responder(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 0..4)) {
        let mut b = Session::new(config("b"), SecretKey::from_slice(&[5; 32]).unwrap(), Role::Responder, [0; 32], T0);
        for c in &chunks {
            b.handle_input(T0, c);
            while b.poll_action().is_some() {}
        }
        b.handle_timeout(T0.plus_millis(10_000));
        while b.poll_action().is_some() {}
        prop_assert!(b.poll_timeout().is_none());
    }

    #[test]
    fn arbitrary_bytes_after_handshake(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (_, mut b) = established(23);
        b.s.handle_input(T0, &bytes);
        b.drain();
        prop_assert!(bytes.len() < 32 || b.disconnected().is_some());
    }

    #[test]
    fn hello_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_hello(&bytes);
        let _ = decode_disconnect(&bytes);
    }
}
