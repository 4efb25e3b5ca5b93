use super::*;
use crate::rng::{rng_from_seed, seed_from_u64};
use crate::time::Time;
use proptest::prelude::*;
use secp256k1::SecretKey;
use serde_json::Value;

const WHISPER_VECTORS: &str = include_str!("../../../testdata/vectors/whisperv6_vectors.json");
const DERIVED: &str = include_str!("../../../testdata/vectors/derived_local_checks.json");

fn hex4(s: &str) -> [u8; 4] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[test]
fn pow_vectors() {
    let v: Value = serde_json::from_str(WHISPER_VECTORS).unwrap();
    for case in v["pow"].as_array().unwrap() {
        let e = &case["envelope"];
        let env = Envelope {
            expiry: e["expiry"].as_u64().unwrap() as u32,
            ttl: e["ttl"].as_u64().unwrap() as u32,
            topic: Topic(hex4(e["topic"].as_str().unwrap())),
            data: hex::decode(e["data"].as_str().unwrap()).unwrap(),
            nonce: e["nonce"].as_u64().unwrap(),
        };
        assert_eq!(
            hex::encode(env.rlp_without_nonce()),
            "cc8001840000000084deadbeef"
        );
        let expected = case["expected_pow"].as_f64().unwrap();
        assert_eq!(
            env.pow(PowFormula::Current, 0),
            expected,
            "nonce {}",
            env.nonce
        );
    }
}

#[test]
fn legacy_pow_differs_and_is_finite() {
    let env = Envelope {
        expiry: 0,
        ttl: 1,
        topic: Topic([0; 4]),
        data: vec![0xde, 0xad],
        nonce: 5,
    };
    let p = env.pow(PowFormula::Legacy, 0);
    assert!(p.is_finite() && p > 0.0);
}

#[test]
fn seal_reaches_target_deterministically() {
    for formula in [PowFormula::Current, PowFormula::Legacy] {
        let mut env = Envelope {
            expiry: 1000,
            ttl: 10,
            topic: Topic([1, 2, 3, 4]),
            data: vec![7; 300],
            nonce: 0,
        };
        let mut env2 = env.clone();
        env.seal(formula, 0.002, 42, 1 << 20).unwrap();
        env2.seal(formula, 0.002, 42, 1 << 20).unwrap();
        assert_eq!(env, env2);
        assert!(env.pow(formula, 0) >= 0.002, "{formula:?}");
    }
    let mut env = Envelope {
        expiry: 1000,
        ttl: 10,
        topic: Topic([0; 4]),
        data: vec![],
        nonce: 9,
    };
    assert_eq!(env.seal(PowFormula::Current, 0.0, 0, 10), Ok(0));
    assert_eq!(env.nonce, 9);
    assert!(matches!(
        env.seal(PowFormula::Current, 1e9, 0, 10),
        Err(WhisperError::PowTargetNotReached { iterations: 10 })
    ));
}

#[test]
fn bloom_vector() {
    let v: Value = serde_json::from_str(WHISPER_VECTORS).unwrap();
    let b = topic_to_bloom(Topic(hex4(v["bloom"]["topic"].as_str().unwrap())));
    let mut expected = [0u8; 64];
    for (k, val) in v["bloom"]["expected_bloom_nonzero_bytes"]
        .as_object()
        .unwrap()
    {
        expected[k.parse::<usize>().unwrap()] = hex::decode(val.as_str().unwrap()).unwrap()[0];
    }
    assert_eq!(b.0, expected);
    // Assignment quirk: indices 1, 2, 0 all fall in byte 0; only the last (bit 0) survives.
    let q = topic_to_bloom(Topic([1, 2, 0, 0]));
    assert_eq!(q.0[0], 0x01);
    assert!(bloom_match(None, &q));
    assert!(Bloom::FULL.matches(&q));
    assert!(!Bloom::EMPTY.matches(&q));
}

#[test]
fn topic_vectors() {
    let v: Value = serde_json::from_str(WHISPER_VECTORS).unwrap();
    for c in v["topic_string"].as_array().unwrap() {
        assert_eq!(
            Topic(hex4(c["topic"].as_str().unwrap())).to_string(),
            c["string"].as_str().unwrap()
        );
    }
    for c in v["bytes_to_topic"].as_array().unwrap() {
        let data = hex::decode(c["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            Topic::from_bytes(&data).0,
            hex4(c["topic"].as_str().unwrap())
        );
    }
}

#[test]
fn pbkdf2_and_pow_bits_vectors() {
    let v: Value = serde_json::from_str(DERIVED).unwrap();
    for c in v["pbkdf2_whisper_symkey"]["cases"].as_array().unwrap() {
        let key = sym_key_from_password(c["password"].as_str().unwrap().as_bytes());
        assert_eq!(hex::encode(key), c["key"].as_str().unwrap());
    }
    for c in v["pow_requirement_float_bits"].as_array().unwrap() {
        let pow = c["pow"].as_f64().unwrap();
        assert_eq!(
            hex::encode(encode_pow_requirement(pow)),
            c["rlp"].as_str().unwrap()
        );
        assert_eq!(
            decode_pow_requirement(&encode_pow_requirement(pow)).unwrap(),
            pow
        );
    }
}

fn sample_envelope() -> Envelope {
    Envelope {
        expiry: 1_600_000_015,
        ttl: 15,
        topic: Topic([0xcd, 0x42, 0x37, 0x60]),
        data: vec![1; 70],
        nonce: 77,
    }
}

#[test]
fn envelope_roundtrip_and_hash() {
    let env = sample_envelope();
    let enc = env.encode();
    let dec = Envelope::decode(&enc).unwrap();
    assert_eq!(dec, env);
    assert_eq!(dec.hash(), crate::keccak::keccak256(&enc));
    // 4 items, 6 items, wrong topic width are rejected.
    let mut e = crate::rlp::Encoder::new();
    e.list(|e| {
        e.u64(1).u64(2).bytes(&[0; 4]).bytes(b"x");
    });
    assert!(Envelope::decode(&e.finish()).is_err());
    let mut e = crate::rlp::Encoder::new();
    e.list(|e| {
        e.u64(1).u64(2).bytes(&[0; 3]).bytes(b"x").u64(0);
    });
    assert!(Envelope::decode(&e.finish()).is_err());
    let msgs = encode_messages(&[env.clone(), env.clone()]);
    assert_eq!(decode_messages(&msgs).unwrap(), vec![env.clone(), env]);
    assert_eq!(decode_messages(&[0xc0]).unwrap(), vec![]);
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).unwrap()
}

#[test]
fn message_sign_encrypt_roundtrip() {
    let mut rng = rng_from_seed([3; 32]);
    let sym = sym_key_from_password(b"status");
    for (payload_len, signed) in [
        (0usize, false),
        (5, true),
        (300, true),
        (70_000, false),
        (191, true),
    ] {
        let params = MessageParams {
            payload: vec![0xab; payload_len],
            padding: None,
            sign_with: signed.then(|| key(9)),
            topic: Topic([1, 2, 3, 4]),
            ttl_secs: 10,
            pow_target: 0.002,
        };
        let plain = build_plaintext(&params, &mut rng).unwrap();
        assert_eq!(plain.len() % PAD_SIZE_LIMIT, 0, "len {payload_len}");
        let parsed = parse_plaintext(&plain).unwrap();
        assert_eq!(parsed.payload, params.payload);
        let expect_signer = signed.then(|| key(9).public_key(crate::ecies::secp()));
        assert_eq!(parsed.signer, expect_signer);
        let env = wrap_symmetric(
            &params,
            &sym,
            1_000,
            PowFormula::Current,
            0,
            1 << 20,
            &mut rng,
        )
        .unwrap();
        assert_eq!(env.expiry, 1_010);
        assert!(env.pow(PowFormula::Current, 0) >= 0.002);
        let got = open_symmetric(&env, env.hash(), &sym, PowFormula::Current).unwrap();
        assert_eq!(got.payload, params.payload);
        assert_eq!(got.signer, expect_signer);
        assert_eq!(got.sent_secs, 1_000);
        assert!(open_symmetric(
            &env,
            env.hash(),
            &sym_key_from_password(b"other"),
            PowFormula::Current
        )
        .is_err());
    }
    // Explicit padding is used verbatim.
    let params = MessageParams {
        payload: b"hi".to_vec(),
        padding: Some(vec![9, 9, 9]),
        sign_with: None,
        topic: Topic::default(),
        ttl_secs: 0,
        pow_target: 0.0,
    };
    let plain = build_plaintext(&params, &mut rng).unwrap();
    assert_eq!(plain, vec![1, 2, b'h', b'i', 9, 9, 9]);
    assert_eq!(
        encrypt_symmetric(&plain, &[0; 32], &mut rng),
        Err(WhisperError::InvalidKey)
    );
    assert_eq!(
        decrypt_symmetric(&[1; 11], &sym),
        Err(WhisperError::DecryptFailed)
    );
}

#[test]
fn status_codec() {
    let s = StatusPacket {
        version: 6,
        min_pow: 0.002,
        bloom: None,
        light_node: false,
        confirmations_enabled: true,
        rate_limits: None,
    };
    let enc = s.encode();
    assert_eq!(hex::encode(&enc), "cd06883f60624dd2f1a9fc808001");
    assert_eq!(StatusPacket::decode(&enc).unwrap(), s);
    // 2020 six-field form.
    let s6 = StatusPacket {
        bloom: Some(Bloom::EMPTY),
        rate_limits: Some(RateLimits {
            ip_limit: 10,
            peer_id_limit: 5,
            topic_limit: 0,
        }),
        ..s.clone()
    };
    assert_eq!(StatusPacket::decode(&s6.encode()).unwrap(), s6);
    // geth's 4-field form and a bare version.
    let mut e = crate::rlp::Encoder::new();
    e.list(|e| {
        e.u64(6).u64(0.2f64.to_bits()).bytes(&[]).bool(true);
    });
    let g = StatusPacket::decode(&e.finish()).unwrap();
    assert!(g.light_node && !g.confirmations_enabled && g.min_pow == 0.2);
    assert!(StatusPacket::decode(&[0xc1, 0x06]).is_ok());
    assert_eq!(
        StatusPacket::decode(&[0xc1, 0x05]),
        Err(WhisperError::VersionMismatch { version: 5 })
    );
    let mut e = crate::rlp::Encoder::new();
    e.list(|e| {
        e.u64(6).u64(f64::NAN.to_bits());
    });
    assert_eq!(
        StatusPacket::decode(&e.finish()),
        Err(WhisperError::InvalidPow)
    );
    let mut e = crate::rlp::Encoder::new();
    e.list(|e| {
        e.u64(6).u64(0).bytes(&[0; 10]);
    });
    assert_eq!(
        StatusPacket::decode(&e.finish()),
        Err(WhisperError::BadBloomLength { found: 10 })
    );
    assert_eq!(
        decode_bloom_filter(&encode_bloom_filter(&Bloom::FULL)).unwrap(),
        Bloom::FULL
    );
}

proptest! {
    #[test]
    fn decoders_total_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Envelope::decode(&bytes);
        let _ = decode_messages(&bytes);
        let _ = StatusPacket::decode(&bytes);
        let _ = parse_plaintext(&bytes);
        let _ = decode_pow_requirement(&bytes);
        let _ = decode_bloom_filter(&bytes);
        let _ = decrypt_symmetric(&bytes, &[1; 32]);
    }

    #[test]
    fn envelope_roundtrip_and_truncations(expiry in any::<u32>(), ttl in any::<u32>(), topic in any::<[u8; 4]>(),
                                          data in proptest::collection::vec(any::<u8>(), 0..200), nonce in any::<u64>()) {
        let env = Envelope { expiry, ttl, topic: Topic(topic), data, nonce };
        let enc = env.encode();
        prop_assert_eq!(Envelope::decode(&enc).unwrap(), env.clone());
        for cut in 0..enc.len() {
            prop_assert!(Envelope::decode(&enc[..cut]).is_err());
        }
        let p = env.pow(PowFormula::Current, 0);
        prop_assert!(!p.is_nan());
    }

    #[test]
    fn plaintext_roundtrip_and_truncations(payload in proptest::collection::vec(any::<u8>(), 0..600), signed in any::<bool>(), seed in any::<u64>()) {
        let mut rng = rng_from_seed(seed_from_u64(seed));
        let params = MessageParams { payload: payload.clone(), padding: None, sign_with: signed.then(|| key(7)),
            topic: Topic::default(), ttl_secs: 10, pow_target: 0.0 };
        let plain = build_plaintext(&params, &mut rng).unwrap();
        prop_assert_eq!(parse_plaintext(&plain).unwrap().payload, payload);
        for cut in 0..plain.len() {
            let _ = parse_plaintext(&plain[..cut]);
        }
    }

    #[test]
    fn status_roundtrip_and_truncations(pow in 0.0f64..1e6, light in any::<bool>(), conf in any::<bool>(), full in any::<bool>()) {
        let s = StatusPacket { version: 6, min_pow: pow, bloom: if full { None } else { Some(Bloom([0x5a; 64])) },
            light_node: light, confirmations_enabled: conf, rate_limits: None };
        let enc = s.encode();
        prop_assert_eq!(StatusPacket::decode(&enc).unwrap(), s);
        for cut in 0..enc.len() {
            let _ = StatusPacket::decode(&enc[..cut]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-peer machine tests with a tiny in-test router.

const T0_MS: u64 = 1_600_000_000_000;

struct Net {
    nodes: Vec<Whisper>,
    /// links[(a, b)]: node a's PeerKey for node b is b as u64.
    links: Vec<(usize, usize)>,
    delivered: Vec<Vec<(FilterId, ReceivedMessage)>>,
    /// (from, to, hash) for every envelope sent.
    sent: Vec<(usize, usize, [u8; 32])>,
    disconnects: Vec<(usize, PeerKey, PeerFault)>,
    now: Time,
}

impl Net {
    fn line(n: usize, config: Config) -> Net {
        let now = Time(T0_MS);
        let nodes = (0..n)
            .map(|i| Whisper::new(config.clone(), seed_from_u64(i as u64), now))
            .collect();
        let links = (0..n.saturating_sub(1)).map(|i| (i, i + 1)).collect();
        let mut net = Net {
            nodes,
            links,
            delivered: vec![Vec::new(); n],
            sent: Vec::new(),
            disconnects: Vec::new(),
            now,
        };
        for (a, b) in net.links.clone() {
            net.nodes[a].handle_peer_connected(now, b as u64);
            net.nodes[b].handle_peer_connected(now, a as u64);
        }
        net.pump();
        net
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.links
            .iter()
            .any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a))
    }

    /// Drains every node's actions and delivers sends instantly until quiet.
    fn pump(&mut self) {
        loop {
            let mut progress = false;
            for i in 0..self.nodes.len() {
                while let Some(a) = self.nodes[i].poll_action() {
                    progress = true;
                    match a {
                        Action::Send {
                            peer,
                            code,
                            payload,
                        } => {
                            let to = peer as usize;
                            assert!(self.linked(i, to));
                            if code == codes::MESSAGES {
                                for env in decode_messages(&payload).unwrap() {
                                    self.sent.push((i, to, env.hash()));
                                }
                            }
                            self.nodes[to].handle_peer_message(self.now, i as u64, code, &payload);
                        }
                        Action::Deliver { filter, message } => {
                            self.delivered[i].push((filter, message))
                        }
                        Action::DisconnectPeer { peer, reason } => {
                            self.disconnects.push((i, peer, reason))
                        }
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// Advances virtual time to `until`, firing timers in order.
    fn run_until(&mut self, until: Time) {
        loop {
            let next = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for n in &mut self.nodes {
                        n.handle_timeout(self.now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }
}

fn chat_filter(name: &str) -> Filter {
    Filter {
        topics: vec![Topic::from_bytes(&crate::keccak::keccak256(
            name.as_bytes(),
        ))],
        sym_key: sym_key_from_password(name.as_bytes()),
        min_pow: 0.0,
    }
}

fn chat_params(name: &str, text: &[u8]) -> MessageParams {
    MessageParams {
        payload: text.to_vec(),
        padding: None,
        sign_with: Some(key(5)),
        topic: Topic::from_bytes(&crate::keccak::keccak256(name.as_bytes())),
        ttl_secs: 15,
        pow_target: 0.002,
    }
}

#[test]
fn line_of_four_delivers_once_and_never_echoes() {
    let mut net = Net::line(4, Config::default());
    let peers: Vec<usize> = net
        .nodes
        .iter()
        .map(|n| n.handshaken_peers().len())
        .collect();
    assert_eq!(peers, vec![1, 2, 2, 1]);
    let filters: Vec<FilterId> = (0..4)
        .map(|i| net.nodes[i].add_filter(chat_filter("status")).unwrap())
        .collect();
    let sym = sym_key_from_password(b"status");
    let hash = net.nodes[0]
        .post(net.now, chat_params("status", b"hello"), &sym)
        .unwrap();
    net.pump();
    // Own filter sees own post (Go `Send` → `add` → filters).
    assert_eq!(net.delivered[0].len(), 1);
    net.run_until(Time(T0_MS + 5_000));
    for (i, filter) in filters.iter().enumerate() {
        assert_eq!(net.delivered[i].len(), 1, "node {i}");
        let (f, m) = &net.delivered[i][0];
        assert_eq!(f, filter);
        assert_eq!(m.payload, b"hello");
        assert_eq!(m.envelope_hash, hash);
        assert_eq!(m.signer, Some(key(5).public_key(crate::ecies::secp())));
        assert!(net.nodes[i].has_envelope(&hash));
    }
    // Exactly one send per directed link along the line, never backwards, never twice.
    let mut sends = net.sent.clone();
    sends.sort();
    assert_eq!(sends, vec![(0, 1, hash), (1, 2, hash), (2, 3, hash)]);
    assert!(net.disconnects.is_empty());
    // Expiry: after TTL (15 s) plus the purge period the envelope is gone everywhere.
    net.run_until(Time(T0_MS + 20_000));
    for n in &net.nodes {
        assert_eq!(n.pool_len(), 0);
        assert_eq!(n.poll_timeout(), None);
    }
    // A late replay of the (now expired) envelope is not forwarded or delivered.
    let sent_before = net.sent.len();
    let mut env = Envelope::decode(
        &Envelope {
            expiry: 0,
            ttl: 0,
            topic: Topic::default(),
            data: vec![],
            nonce: 0,
        }
        .encode(),
    )
    .unwrap();
    env.expiry = (T0_MS / 1000) as u32 + 15;
    net.nodes[1].handle_peer_message(net.now, 0, codes::MESSAGES, &encode_messages(&[env]));
    net.pump();
    net.run_until(Time(T0_MS + 25_000));
    assert_eq!(net.sent.len(), sent_before);
    assert_eq!(
        net.nodes[1].stats().dropped_expired + net.nodes[1].stats().dropped_very_old,
        1
    );
}

#[test]
fn low_pow_envelope_disconnects_and_is_not_forwarded() {
    let mut net = Net::line(3, Config::default());
    let now_s = (T0_MS / 1000) as u32;
    // PoW 0: nonce 0 almost surely gives far below 0.001 for a 300-byte envelope.
    let mut env = Envelope {
        expiry: now_s + 10,
        ttl: 10,
        topic: Topic([1, 2, 3, 4]),
        data: vec![3; 300],
        nonce: 0,
    };
    while env.pow(PowFormula::Current, 0) >= 0.001 {
        env.nonce += 1;
    }
    net.nodes[1].handle_peer_message(net.now, 0, codes::MESSAGES, &encode_messages(&[env]));
    net.pump();
    net.run_until(Time(T0_MS + 2_000));
    assert!(net.sent.is_empty());
    assert_eq!(net.disconnects.len(), 1);
    assert_eq!(net.disconnects[0], (1, 0, PeerFault::LowPow));
    assert_eq!(net.nodes[1].stats().dropped_low_pow, 1);
}

#[test]
fn future_envelope_dropped_peer_kept() {
    let mut net = Net::line(2, Config::default());
    let now_s = (T0_MS / 1000) as u32;
    let mut env = Envelope {
        expiry: now_s + 100,
        ttl: 10,
        topic: Topic([1, 2, 3, 4]),
        data: vec![3; 10],
        nonce: 0,
    };
    env.seal(PowFormula::Current, 0.01, 0, 1 << 20).unwrap();
    net.nodes[1].handle_peer_message(net.now, 0, codes::MESSAGES, &encode_messages(&[env]));
    net.pump();
    assert!(net.disconnects.is_empty());
    assert_eq!(net.nodes[1].stats().dropped_future, 1);
    assert_eq!(net.nodes[1].pool_len(), 0);
}

#[test]
fn handshake_faults() {
    let mut w = Whisper::new(Config::default(), [1; 32], Time(T0_MS));
    w.handle_peer_connected(Time(T0_MS), 7);
    assert!(matches!(
        w.poll_action(),
        Some(Action::Send {
            peer: 7,
            code: 0,
            ..
        })
    ));
    w.handle_peer_message(Time(T0_MS), 7, codes::MESSAGES, &[0xc0]);
    assert_eq!(
        w.poll_action(),
        Some(Action::DisconnectPeer {
            peer: 7,
            reason: PeerFault::NoStatusFirst { code: 1 }
        })
    );
    w.handle_peer_connected(Time(T0_MS), 8);
    let _ = w.poll_action();
    w.handle_peer_message(Time(T0_MS), 8, codes::STATUS, &[0xc1, 0x05]);
    assert!(matches!(
        w.poll_action(),
        Some(Action::DisconnectPeer {
            peer: 8,
            reason: PeerFault::BadStatus(_)
        })
    ));
    // Light ↔ light refused.
    let mut l = Whisper::new(
        Config {
            light_node: true,
            ..Config::default()
        },
        [1; 32],
        Time(T0_MS),
    );
    l.handle_peer_connected(Time(T0_MS), 1);
    let _ = l.poll_action();
    let st = StatusPacket {
        version: 6,
        min_pow: 0.001,
        bloom: None,
        light_node: true,
        confirmations_enabled: false,
        rate_limits: None,
    };
    l.handle_peer_message(Time(T0_MS), 1, codes::STATUS, &st.encode());
    assert_eq!(
        l.poll_action(),
        Some(Action::DisconnectPeer {
            peer: 1,
            reason: PeerFault::LightClientsRestricted
        })
    );
    assert_eq!(l.poll_action(), None);
}

#[test]
fn topic_bloom_mode_advertises_and_filters() {
    let cfg = Config {
        topic_bloom: true,
        ..Config::default()
    };
    let mut net = Net::line(2, cfg);
    let f = chat_filter("status");
    net.nodes[1].add_filter(f.clone()).unwrap();
    net.pump();
    assert_eq!(net.nodes[1].bloom(), Some(f.topics[0].bloom()));
    // Node 0 posts on two topics; node 1 only receives the one its bloom covers.
    let sym = sym_key_from_password(b"status");
    let h1 = net.nodes[0]
        .post(net.now, chat_params("status", b"a"), &sym)
        .unwrap();
    let _h2 = net.nodes[0]
        .post(net.now, chat_params("other-channel", b"b"), &sym)
        .unwrap();
    net.run_until(Time(T0_MS + 1_000));
    assert_eq!(net.sent, vec![(0, 1, h1)]);
    assert_eq!(net.delivered[1].len(), 1);
}

#[test]
fn pool_is_bounded() {
    let cfg = Config {
        max_envelopes: 2,
        min_pow: 0.0,
        ..Config::default()
    };
    let mut w = Whisper::new(cfg, [2; 32], Time(T0_MS));
    let sym = sym_key_from_password(b"x");
    for ttl in [30u32, 20, 40] {
        let p = MessageParams {
            ttl_secs: ttl,
            pow_target: 0.0,
            ..chat_params("x", b"y")
        };
        w.post(Time(T0_MS), p, &sym).unwrap();
    }
    assert_eq!(w.pool_len(), 2);
    assert_eq!(w.stats().pool_evictions, 1);
    let p = MessageParams {
        ttl_secs: 5,
        pow_target: 0.0,
        ..chat_params("x", b"y")
    };
    assert_eq!(w.post(Time(T0_MS), p, &sym), Err(WhisperError::Dropped));
}
