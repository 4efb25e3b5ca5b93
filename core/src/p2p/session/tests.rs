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
                } => Some((capability.to_string(), *code, payload.clone())),
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

/// Like [`raw_dial`] but keeps the forger's codec, for driving the session further.
fn raw_peer(seed: u64, hello: Hello, cb: Arc<Config>) -> (Node, FrameCodec) {
    let (b, codec, _reply) = raw_peer_with_reply(seed, hello, cb);
    (b, codec)
}

/// [`raw_peer`], also returning the bytes the session sent in answer to the forged Hello.
fn raw_peer_with_reply(seed: u64, hello: Hello, cb: Arc<Config>) -> (Node, FrameCodec, Vec<u8>) {
    let mut rng = rng_from_seed(seed_from_u64(seed));
    let ka = random_secret_key(&mut rng);
    let kb = random_secret_key(&mut rng);
    let mut b = Node {
        s: Session::new(cb, kb, Role::Responder, [4; 32], T0),
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
    let (code, _) = codec.open(&mut rest).unwrap().unwrap();
    assert_eq!(code, HELLO);
    let mut hello = hello;
    if hello.node_id.is_empty() {
        hello.node_id = ecies::pubkey_to_wire(&public_key(&ka)).to_vec();
    }
    let mut out = Vec::new();
    codec.seal(HELLO, &encode_hello(&hello), &mut out).unwrap();
    b.s.handle_input(T0, &out);
    let reply = b.drain();
    (b, codec, reply)
}

#[test]
fn legacy_auth_from_our_initiator_gets_a_legacy_ack_and_establishes() {
    let legacy = Arc::new(Config {
        auth_format: PacketFormat::Legacy,
        ..Config::default()
    });
    let (mut a, mut b) = pair_with(30, legacy, config("bob"));
    let auth = a.drain();
    assert_eq!(auth.len(), LEGACY_AUTH);
    b.s.handle_input(T0, &auth);
    let reply = b.drain();
    // 210-byte legacy ack, then b's Hello frame.
    let ack_len = crate::p2p::rlpx::handshake::LEGACY_ACK_PACKET_BYTES;
    a.s.handle_input(T0, &reply[..ack_len]);
    a.s.handle_input(T0, &reply[ack_len..]);
    pump(&mut a, &mut b, T0, 7);
    assert!(a.s.is_established() && b.s.is_established());
    a.s.send(T0, "shh", 3, b"legacy").unwrap();
    pump(&mut a, &mut b, T0, usize::MAX);
    assert_eq!(b.messages(), vec![("shh".into(), 3, b"legacy".to_vec())]);
}

fn two_caps() -> Vec<Capability> {
    vec![Capability::new("tst", 1, 8), Capability::new("shh", 6, 128)]
}

#[test]
fn two_capabilities_are_multiplexed() {
    let ca = Arc::new(Config {
        capabilities: two_caps(),
        ..Config::default()
    });
    // b lists them in the other order and also runs a cap a does not.
    let mut caps_b = two_caps();
    caps_b.reverse();
    caps_b.push(Capability::new("les", 2, 21));
    let cb = Arc::new(Config {
        capabilities: caps_b,
        ..Config::default()
    });
    let (mut a, mut b) = pair_with(31, ca, cb);
    pump(&mut a, &mut b, T0, usize::MAX);
    assert!(a.s.is_established() && b.s.is_established());
    for n in [&a, &b] {
        let shared = n.s.shared_capabilities();
        assert_eq!(shared.len(), 2);
        // Name order: shh at 0x10 (128 codes), then tst at 0x90.
        assert_eq!(shared["shh"].offset, 0x10);
        assert_eq!(shared["tst"].offset, 0x90);
    }
    a.s.send(T0, "tst", 7, b"t7").unwrap();
    a.s.send(T0, "shh", 127, b"s127").unwrap();
    a.s.send(T0, "tst", 0, b"t0").unwrap();
    assert_eq!(
        a.s.send(T0, "tst", 8, b"x"),
        Err(SessionError::CodeOutOfRange { code: 8, length: 8 })
    );
    assert!(matches!(
        a.s.send(T0, "les", 0, b"x"),
        Err(SessionError::UnknownCapability { .. })
    ));
    pump(&mut a, &mut b, T0, 5);
    assert_eq!(
        b.messages(),
        vec![
            ("tst".into(), 7, b"t7".to_vec()),
            ("shh".into(), 127, b"s127".to_vec()),
            ("tst".into(), 0, b"t0".to_vec()),
        ]
    );
    match &b.events[0] {
        Event::Established { capabilities, .. } => {
            let names: Vec<&str> = capabilities.iter().map(|c| &*c.name).collect();
            assert_eq!(names, ["shh", "tst"]);
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn code_past_every_capability_is_a_protocol_error() {
    let (mut b, mut codec) = raw_peer(32, hello_with(&[], &[("shh", 6)]), config("b"));
    assert!(b.s.is_established());
    let mut out = Vec::new();
    let payload = snap::raw::Encoder::new().compress_vec(b"x").unwrap();
    codec.seal(0x10 + 128, &payload, &mut out).unwrap();
    b.s.handle_input(T0, &out);
    b.drain();
    assert_eq!(b.s.fault(), Some(Fault::CodeOutOfRange));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
}

#[test]
fn snappy_only_from_version_5() {
    // A version-4 peer: its frames are plain and ours to it are plain too.
    let mut h4 = hello_with(&[], &[("shh", 6)]);
    h4.version = 4;
    let (mut b, mut codec) = raw_peer(33, h4, config("b"));
    assert!(b.s.is_established());
    let mut out = Vec::new();
    codec.seal(0x10 + 1, b"plain payload", &mut out).unwrap();
    b.s.handle_input(T0, &out);
    b.drain();
    assert_eq!(
        b.messages(),
        vec![("shh".into(), 1, b"plain payload".to_vec())]
    );
    b.s.send(T0, "shh", 2, b"reply").unwrap();
    let mut wire = b.drain();
    assert_eq!(
        codec.open(&mut wire).unwrap(),
        Some((0x12, b"reply".to_vec()))
    );

    // A version-5 peer: payloads are snappy blocks both ways.
    let (mut b, mut codec) = raw_peer(34, hello_with(&[], &[("shh", 6)]), config("b"));
    b.s.send(T0, "shh", 2, b"reply").unwrap();
    let mut wire = b.drain();
    let (code, data) = codec.open(&mut wire).unwrap().unwrap();
    assert_eq!(code, 0x12);
    assert_eq!(
        snap::raw::Decoder::new().decompress_vec(&data).unwrap(),
        b"reply"
    );
    // An uncompressed payload from a v5 peer is not valid snappy.
    let mut out = Vec::new();
    codec.seal(0x11, &[0xff; 40], &mut out).unwrap();
    b.s.handle_input(T0, &out);
    b.drain();
    assert_eq!(b.s.fault(), Some(Fault::BadSnappy));
}

#[test]
fn protocol_version_below_the_minimum_is_incompatible() {
    let mut h = hello_with(&[], &[("shh", 6)]);
    h.version = 3;
    let (b, _) = raw_peer(35, h, config("b"));
    assert_eq!(b.s.fault(), Some(Fault::IncompatibleVersion));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::IncompatibleVersion, false))
    );
    // A future version (and extra Hello elements) are accepted, as geth does.
    let mut h = hello_with(&[], &[("shh", 6)]);
    h.version = 55;
    let (b, _) = raw_peer(36, h, config("b"));
    assert!(b.s.is_established());
}

#[test]
fn oversize_hello_is_refused_from_its_header() {
    let mut rng = rng_from_seed(seed_from_u64(37));
    let ka = random_secret_key(&mut rng);
    let kb = random_secret_key(&mut rng);
    let mut b = Node {
        s: Session::new(config("b"), kb, Role::Responder, [4; 32], T0),
        key: kb,
        events: vec![],
        closed: false,
    };
    let init = RawInitiator::new(&mut rng, ka, public_key(&kb));
    b.s.handle_input(T0, init.auth_packet());
    let reply = b.drain();
    let (ack, _, used) = init.read_ack(&reply).unwrap().unwrap();
    let mut codec = FrameCodec::new(init.finish(&ack, &reply[..used]), MAX_FRAME_SIZE_BYTES);
    let mut out = Vec::new();
    codec.seal(HELLO, &vec![0u8; 100_000], &mut out).unwrap();
    // The header alone is enough: b does not wait for 100 kB.
    b.s.handle_input(T0, &out[..32]);
    b.drain();
    assert_eq!(b.s.fault(), Some(Fault::HelloTooLarge));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::ProtocolError, false))
    );
}

#[test]
fn self_connect_is_detected_in_both_roles() {
    let key = SecretKey::from_slice(&[0x31; 32]).unwrap();
    // Dialing our own key: nothing is sent, the session ends at once.
    let mut a = Node {
        s: Session::new(
            config("a"),
            key,
            Role::Initiator {
                remote: public_key(&key),
            },
            [1; 32],
            T0,
        ),
        key,
        events: vec![],
        closed: false,
    };
    assert!(a.drain().is_empty());
    assert_eq!(
        a.disconnected(),
        Some((DisconnectReason::SelfConnect, false))
    );
    assert_eq!(a.s.fault(), Some(Fault::SelfConnect));
    // Our own auth arriving on an inbound connection (we dialed our own address).
    let mut rng = rng_from_seed(seed_from_u64(38));
    let init = RawInitiator::new(&mut rng, key, public_key(&key));
    let mut b = Node {
        s: Session::new(config("b"), key, Role::Responder, [2; 32], T0),
        key,
        events: vec![],
        closed: false,
    };
    b.s.handle_input(T0, init.auth_packet());
    assert!(b.drain().is_empty(), "no ack to ourselves");
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::SelfConnect, false))
    );
}

#[test]
fn faults_are_labelled() {
    let (mut a, mut b) = established(39);
    a.s.send(T0, "shh", 0, b"hello").unwrap();
    let mut wire = a.drain();
    let last = wire.len() - 1;
    wire[last] ^= 1; // frame MAC
    b.s.handle_input(T0, &wire);
    b.drain();
    assert_eq!(b.s.fault(), Some(Fault::BadFrameMac));
    // The peer that receives our Disconnect records no fault of its own.
    let (mut a, mut b) = established(40);
    b.s.handle_input(T0, &[0x42; 64]);
    let bye = b.drain();
    assert_eq!(b.s.fault(), Some(Fault::BadHeaderMac));
    a.s.handle_input(T0, &bye);
    a.drain();
    assert_eq!(a.s.fault(), None);
    assert_eq!(
        a.disconnected(),
        Some((DisconnectReason::ProtocolError, true))
    );
    // Silent peer: pong timeout.
    let (mut a, _b) = established(41);
    let mut now = T0;
    while a.disconnected().is_none() {
        now = a.s.poll_timeout().unwrap();
        a.s.handle_timeout(now);
        a.drain();
    }
    assert_eq!(a.s.fault(), Some(Fault::PongTimeout));
    assert_eq!(
        now,
        T0.plus_millis(DEFAULT_PING_INTERVAL_MS + DEFAULT_PONG_TIMEOUT_MS)
    );
    // A clean close by us is no fault.
    let (mut a, _b) = established(42);
    a.s.disconnect(T0, DisconnectReason::Quitting);
    a.drain();
    assert_eq!(a.s.fault(), None);
}

#[test]
fn every_disconnect_reason_round_trips_and_has_a_text() {
    let all = [
        DisconnectReason::Requested,
        DisconnectReason::TcpError,
        DisconnectReason::ProtocolError,
        DisconnectReason::UselessPeer,
        DisconnectReason::TooManyPeers,
        DisconnectReason::AlreadyConnected,
        DisconnectReason::IncompatibleVersion,
        DisconnectReason::InvalidIdentity,
        DisconnectReason::Quitting,
        DisconnectReason::UnexpectedIdentity,
        DisconnectReason::SelfConnect,
        DisconnectReason::ReadTimeout,
        DisconnectReason::SubprotocolError,
    ];
    let known: Vec<u64> = (0..=0xffu64)
        .filter(|c| DisconnectReason::from_code(*c).is_some())
        .collect();
    assert_eq!(known.len(), all.len());
    for r in all {
        assert_eq!(DisconnectReason::from_code(u64::from(r.code())), Some(r));
        assert_eq!(decode_disconnect(&encode_disconnect(r)), r);
        assert!(!r.to_string().is_empty());
        // Sent over a live session, each reason reaches the peer intact.
        let (mut a, mut b) = established(50 + u64::from(r.code()));
        a.s.disconnect(T0, r);
        pump(&mut a, &mut b, T0, usize::MAX);
        assert_eq!(b.disconnected(), Some((r, true)));
    }
}

#[test]
fn output_queue_is_bounded() {
    let tight = Arc::new(Config {
        max_queued_output_bytes: 10_000,
        ..Config::default()
    });
    let (mut a, mut b) = pair_with(43, tight, config("b"));
    pump(&mut a, &mut b, T0, usize::MAX);
    let chunk = vec![7u8; 4_000];
    let mut sent = 0;
    let err = loop {
        match a.s.send(T0, "shh", 1, &chunk) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100, "queue never filled");
    };
    assert!(matches!(
        err,
        SessionError::OutputQueueFull { max: 10_000, .. }
    ));
    assert!(a.s.queued_output_bytes() >= 10_000);
    // Draining frees the queue.
    let wire = a.drain();
    assert_eq!(a.s.queued_output_bytes(), 0);
    a.s.send(T0, "shh", 1, &chunk).unwrap();
    b.s.handle_input(T0, &wire);
    b.drain();
    assert_eq!(b.messages().len(), sent);
}

/// The Disconnect frame of `wire` (the only frame), its payload as sent.
fn only_frame(codec: &mut FrameCodec, wire: &[u8]) -> (u64, Vec<u8>) {
    let mut wire = wire.to_vec();
    let frame = codec.open(&mut wire).unwrap().expect("one whole frame");
    assert!(wire.is_empty(), "nothing after the Disconnect");
    frame
}

#[test]
fn disconnect_after_a_v5_hello_is_snappy_compressed() {
    // geth 1.9 switches snappy on once it has read our v5 Hello, so every exit after the
    // remote's v5 Hello must be a snappy block: `c1 03` plain reads as "snappy: corrupt input".
    type Edit = fn(&mut Hello);
    let cases: [(u64, Edit, DisconnectReason); 4] = [
        (
            60,
            |h| h.capabilities = vec![("les".into(), 2)],
            DisconnectReason::UselessPeer,
        ),
        (
            61,
            |h| h.node_id = vec![0; 64],
            DisconnectReason::InvalidIdentity,
        ),
        (
            62,
            |h| h.node_id = vec![7; 64],
            DisconnectReason::UnexpectedIdentity,
        ),
        (
            63,
            |h| h.node_id = vec![7; 63],
            DisconnectReason::InvalidIdentity,
        ),
    ];
    for (seed, edit, reason) in cases {
        let mut hello = hello_with(&[], &[("shh", 6)]);
        edit(&mut hello); // an empty node id is filled in with the right key
        let (b, mut codec, reply) = raw_peer_with_reply(seed, hello, config("b"));
        assert_eq!(b.disconnected(), Some((reason, false)), "{reason:?}");
        let (code, data) = only_frame(&mut codec, &reply);
        assert_eq!(code, DISCONNECT, "{reason:?}");
        let plain = snap::raw::Decoder::new()
            .decompress_vec(&data)
            .unwrap_or_else(|e| panic!("{reason:?}: not snappy ({e}): {}", hex::encode(&data)));
        assert_eq!(plain, encode_disconnect(reason), "{reason:?}");
    }
    // Too many peers (the peer manager's verdict after Established) is compressed as well.
    let (mut b, mut codec) = raw_peer(64, hello_with(&[], &[("shh", 6)]), config("b"));
    assert!(b.s.is_established());
    b.s.disconnect(T0, DisconnectReason::TooManyPeers);
    let (code, data) = only_frame(&mut codec, &b.drain());
    assert_eq!(code, DISCONNECT);
    assert_eq!(
        snap::raw::Decoder::new().decompress_vec(&data).unwrap(),
        encode_disconnect(DisconnectReason::TooManyPeers)
    );
}

#[test]
fn disconnect_after_a_v4_hello_stays_plain() {
    let mut hello = hello_with(&[], &[("les", 2)]);
    hello.version = 4;
    let (b, mut codec, reply) = raw_peer_with_reply(65, hello, config("b"));
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::UselessPeer, false))
    );
    assert_eq!(
        only_frame(&mut codec, &reply),
        (DISCONNECT, encode_disconnect(DisconnectReason::UselessPeer))
    );
}

#[test]
fn plain_disconnect_from_a_v5_peer_keeps_its_reason() {
    // geth's own `DiscInvalidIdentity` (and older hush's exits) arrive plain after a v5 Hello.
    let (mut b, mut codec) = raw_peer(66, hello_with(&[], &[("shh", 6)]), config("b"));
    assert!(b.s.is_established());
    let mut out = Vec::new();
    codec
        .seal(
            DISCONNECT,
            &encode_disconnect(DisconnectReason::InvalidIdentity),
            &mut out,
        )
        .unwrap();
    b.s.handle_input(T0, &out);
    b.drain();
    assert_eq!(
        b.disconnected(),
        Some((DisconnectReason::InvalidIdentity, true))
    );
    assert_eq!(b.s.fault(), None);
}

#[test]
fn discarded_base_messages_are_counted() {
    let (mut b, mut codec) = raw_peer(67, hello_with(&[], &[("shh", 6)]), config("b"));
    let body = snap::raw::Encoder::new().compress_vec(&[0xc0]).unwrap();
    let mut out = Vec::new();
    for code in [HELLO, 0x04, 0x0f] {
        codec.seal(code, &body, &mut out).unwrap();
    }
    b.s.handle_input(T0, &out);
    b.drain();
    assert!(b.s.is_established());
    assert_eq!(b.s.ignored_base_messages(), 3);
}

#[test]
fn labels_are_distinct_snake_case() {
    let reasons: Vec<&str> = (0..=0x10)
        .filter_map(DisconnectReason::from_code)
        .map(DisconnectReason::label)
        .collect();
    let faults = [
        Fault::HandshakeDecrypt,
        Fault::HandshakeSizeUnderflow,
        Fault::HandshakeBody,
        Fault::HandshakeSignature,
        Fault::HandshakeTimeout,
        Fault::BadHeaderMac,
        Fault::BadFrameMac,
        Fault::FrameTooLarge,
        Fault::BadMessageCode,
        Fault::ExpectedHello,
        Fault::HelloTooLarge,
        Fault::BadHello,
        Fault::IncompatibleVersion,
        Fault::InvalidIdentity,
        Fault::UnexpectedIdentity,
        Fault::SelfConnect,
        Fault::UselessPeer,
        Fault::BadSnappy,
        Fault::MessageTooLarge,
        Fault::CodeOutOfRange,
        Fault::PongTimeout,
    ];
    let faults: Vec<&str> = faults.into_iter().map(Fault::label).collect();
    for labels in [reasons, faults] {
        let distinct: std::collections::BTreeSet<&str> = labels.iter().copied().collect();
        assert_eq!(distinct.len(), labels.len(), "{labels:?}");
        assert!(labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
