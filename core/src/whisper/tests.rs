use super::mailserver::{self, decode_p2p_messages};
use super::*;
use crate::rng::{rng_from_seed, seed_from_u64};
use crate::time::Time;
use proptest::prelude::*;
use secp256k1::SecretKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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
    /// Every other action (Archive, confirmations, RequestComplete) per node.
    other: Vec<Vec<Action>>,
    now: Time,
}

impl Net {
    fn line(n: usize, config: Config) -> Net {
        let links = (0..n.saturating_sub(1)).map(|i| (i, i + 1)).collect();
        Net::new(vec![config; n], links)
    }

    fn new(configs: Vec<Config>, links: Vec<(usize, usize)>) -> Net {
        let now = Time(T0_MS);
        let n = configs.len();
        let nodes = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Whisper::new(c, seed_from_u64(i as u64), now))
            .collect();
        let mut net = Net {
            nodes,
            links,
            delivered: vec![Vec::new(); n],
            sent: Vec::new(),
            disconnects: Vec::new(),
            other: vec![Vec::new(); n],
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
                        other => self.other[i].push(other),
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
    Filter::symmetric(
        vec![Topic::from_bytes(&crate::keccak::keccak256(
            name.as_bytes(),
        ))],
        sym_key_from_password(name.as_bytes()),
    )
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
    // Our own filter is not offered our own post (Go's `Send` → `add` → filters would decrypt
    // it; the poster already knows what it posted).
    assert!(net.delivered[0].is_empty());
    assert_eq!(net.nodes[0].stats().decrypt_attempts, 0);
    net.run_until(Time(T0_MS + 5_000));
    assert!(net.delivered[0].is_empty());
    assert!(net.nodes[0].has_envelope(&hash));
    for (i, filter) in filters.iter().enumerate().skip(1) {
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

// ---------------------------------------------------------------------------------------------
// Asymmetric messages, filters, light nodes
// ---------------------------------------------------------------------------------------------

fn hex_key(s: &str) -> SecretKey {
    SecretKey::from_byte_array(&hex::decode(s).unwrap().try_into().unwrap()).unwrap()
}

fn ecies_vectors() -> Value {
    serde_json::from_str(include_str!(
        "../../../testdata/vectors/ecies_geth_vectors.json"
    ))
    .unwrap()
}

#[test]
fn asymmetric_wrap_open_with_geth_vector_keys() {
    let v = ecies_vectors();
    let prv1 = hex_key(v["shared_key_static"]["prv1"].as_str().unwrap());
    let prv2 = hex_key(v["shared_key_static"]["prv2"].as_str().unwrap());
    let pub2 = crate::ecies::public_key(&prv2);
    // The ECDH underlying our ECIES is geth's GenerateShared.
    assert_eq!(
        hex::encode(crate::ecies::ecdh_x(&prv1, &pub2)),
        v["shared_key_static"]["expected_shared"].as_str().unwrap()
    );
    let mut rng = rng_from_seed([3; 32]);
    let params = chat_params("asym", b"to you only");
    let env = wrap(
        &params,
        &Encryption::Asymmetric(pub2),
        1_000,
        PowFormula::Current,
        0,
        1 << 20,
        &mut rng,
    )
    .unwrap();
    // Data = 04 ‖ R(64) ‖ IV(16) ‖ ct ‖ tag(32); the plaintext is a multiple of 256 bytes.
    assert_eq!(env.data[0], 0x04);
    assert_eq!((env.data.len() - 113) % 256, 0);
    let m = open_asymmetric(&env, env.hash(), &prv2, PowFormula::Current).unwrap();
    assert_eq!(m.payload, b"to you only");
    assert_eq!(m.signer, Some(crate::ecies::public_key(&key(5))));
    assert!(m.pow >= 0.002);
    assert_eq!(
        open_asymmetric(&env, env.hash(), &prv1, PowFormula::Current),
        Err(WhisperError::DecryptFailed)
    );
    // A symmetric key never opens it, and garbage never panics.
    assert!(open_symmetric(&env, env.hash(), &[7; 32], PowFormula::Current).is_err());
    assert_eq!(
        decrypt_asymmetric(&[4; 10], &prv1),
        Err(WhisperError::DecryptFailed)
    );
}

#[test]
fn asymmetric_filter_receives_only_its_messages() {
    let mut net = Net::line(2, Config::default());
    let me = key(11);
    let topic = Topic([1, 2, 3, 4]);
    let asym = net.nodes[1]
        .add_filter(Filter::asymmetric(vec![topic], me))
        .unwrap();
    let sym = net.nodes[1]
        .add_filter(Filter::symmetric(vec![topic], [9; 32]))
        .unwrap();
    let params = MessageParams {
        topic,
        ..chat_params("x", b"secret")
    };
    let enc = Encryption::Asymmetric(crate::ecies::public_key(&me));
    net.nodes[0]
        .post_with(net.now, params.clone(), &enc)
        .unwrap();
    // One for someone else: not delivered.
    let other = Encryption::Asymmetric(crate::ecies::public_key(&key(12)));
    net.nodes[0].post_with(net.now, params, &other).unwrap();
    net.run_until(Time(T0_MS + 1_000));
    assert_eq!(net.delivered[1].len(), 1);
    assert_eq!(net.delivered[1][0].0, asym);
    assert_ne!(net.delivered[1][0].0, sym);
    assert_eq!(net.delivered[1][0].1.payload, b"secret");
}

#[test]
fn filter_min_pow_and_topic_are_checked() {
    let mut net = Net::line(2, Config::default());
    let mut f = chat_filter("status");
    f.min_pow = 1e9;
    net.nodes[1].add_filter(f).unwrap();
    let mut other_topic = chat_filter("status");
    other_topic.topics = vec![Topic([0xaa; 4])];
    net.nodes[1].add_filter(other_topic).unwrap();
    let sym = sym_key_from_password(b"status");
    net.nodes[0]
        .post(net.now, chat_params("status", b"m"), &sym)
        .unwrap();
    net.run_until(Time(T0_MS + 1_000));
    assert_eq!(net.nodes[1].pool_len(), 1);
    assert!(net.delivered[1].is_empty());
    assert_eq!(net.nodes[1].stats().delivered, 0);
}

#[test]
fn light_node_delivers_gossip_only_to_p2p_filters() {
    let light = Config {
        light_node: true,
        ..Config::default()
    };
    let mut net = Net::new(vec![Config::default(), light], vec![(0, 1)]);
    let mut no_p2p = chat_filter("status");
    no_p2p.allow_p2p = false;
    net.nodes[1].add_filter(no_p2p).unwrap();
    let p2p = net.nodes[1].add_filter(chat_filter("status")).unwrap();
    let sym = sym_key_from_password(b"status");
    net.nodes[0]
        .post(net.now, chat_params("status", b"m"), &sym)
        .unwrap();
    net.run_until(Time(T0_MS + 1_000));
    let ids: Vec<FilterId> = net.delivered[1].iter().map(|(f, _)| *f).collect();
    assert_eq!(ids, vec![p2p]);
    // Two light nodes refuse each other.
    let mut a = Whisper::new(
        Config {
            light_node: true,
            ..Config::default()
        },
        [1; 32],
        Time(T0_MS),
    );
    a.handle_peer_connected(Time(T0_MS), 1);
    let _ = a.poll_action();
    let status = StatusPacket {
        version: 6,
        min_pow: 0.0,
        bloom: None,
        light_node: true,
        confirmations_enabled: false,
        rate_limits: None,
    };
    a.handle_peer_message(Time(T0_MS), 1, codes::STATUS, &status.encode());
    assert!(matches!(
        a.poll_action(),
        Some(Action::DisconnectPeer {
            reason: PeerFault::LightClientsRestricted,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// Confirmations, tolerance, rate limits
// ---------------------------------------------------------------------------------------------

#[test]
fn confirmations_answer_each_messages_packet() {
    let conf = Config {
        confirmations_enabled: true,
        ..Config::default()
    };
    let mut net = Net::new(vec![Config::default(), conf], vec![(0, 1)]);
    let sym = sym_key_from_password(b"status");
    net.nodes[0]
        .post(net.now, chat_params("status", b"m"), &sym)
        .unwrap();
    net.run_until(Time(T0_MS + 1_000));
    assert_eq!(net.nodes[1].stats().confirmations_sent, 1);
    let got: Vec<&Action> = net.other[0].iter().collect();
    assert_eq!(got.len(), 2, "{got:?}");
    let (
        Action::MessageResponse { peer: 1, response },
        Action::BatchAcknowledged {
            peer: 1,
            batch_hash,
        },
    ) = (got[0], got[1])
    else {
        panic!("expected response then ack: {got:?}");
    };
    assert_eq!(&response.batch_hash, batch_hash);
    assert!(response.errors.is_empty());
}

/// A Whisper with one handshaken peer (key 1) that advertised `limits`.
fn with_peer(config: Config, limits: Option<RateLimits>) -> Whisper {
    let mut w = Whisper::new(config, [1; 32], Time(T0_MS));
    w.handle_peer_connected_from(Time(T0_MS), 1, Some("10.0.0.1".parse().unwrap()));
    let status = StatusPacket {
        version: 6,
        min_pow: 0.0,
        bloom: None,
        light_node: false,
        confirmations_enabled: true,
        rate_limits: limits,
    };
    w.handle_peer_message(Time(T0_MS), 1, codes::STATUS, &status.encode());
    while w.poll_action().is_some() {}
    w
}

fn sealed(now_secs: u32, text: &[u8], pow: f64) -> Envelope {
    let mut rng = rng_from_seed([8; 32]);
    let params = MessageParams {
        pow_target: pow,
        ..chat_params("status", text)
    };
    wrap(
        &params,
        &Encryption::Symmetric([3; 32]),
        now_secs,
        PowFormula::Current,
        0,
        1 << 22,
        &mut rng,
    )
    .unwrap()
}

#[test]
fn raised_pow_requirement_is_tolerated_for_ten_seconds() {
    let mut w = with_peer(Config::default(), None);
    let now = Time(T0_MS);
    w.set_min_pow(now, 50.0).unwrap();
    assert_eq!(
        w.poll_action(),
        Some(Action::Send {
            peer: 1,
            code: codes::POW_REQUIREMENT,
            payload: encode_pow_requirement(50.0)
        })
    );
    let t0 = (T0_MS / 1000) as u32;
    let e1 = sealed(t0, b"a", 0.002);
    w.handle_peer_message(
        now,
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&e1)),
    );
    assert!(
        w.has_envelope(&e1.hash()),
        "old requirement still tolerated"
    );
    let later = Time(T0_MS + 10_001);
    let e2 = sealed(t0 + 10, b"b", 0.002);
    w.handle_peer_message(later, 1, codes::MESSAGES, &encode_messages(&[e2]));
    assert!(matches!(
        w.poll_action(),
        Some(Action::DisconnectPeer {
            reason: PeerFault::LowPow,
            ..
        })
    ));
    assert_eq!(
        w.set_min_pow(later, f64::NAN),
        Err(WhisperError::InvalidPow)
    );
}

#[test]
fn changed_bloom_is_tolerated_then_enforced() {
    let mut w = with_peer(Config::default(), None);
    w.set_bloom(Time(T0_MS), Some(Bloom::EMPTY));
    assert!(matches!(
        w.poll_action(),
        Some(Action::Send {
            code: codes::BLOOM_FILTER,
            ..
        })
    ));
    let t0 = (T0_MS / 1000) as u32;
    let e1 = sealed(t0, b"a", 0.002);
    w.handle_peer_message(
        Time(T0_MS),
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&e1)),
    );
    assert!(w.has_envelope(&e1.hash()));
    let e2 = sealed(t0 + 11, b"b", 0.002);
    w.handle_peer_message(
        Time(T0_MS + 11_000),
        1,
        codes::MESSAGES,
        &encode_messages(&[e2]),
    );
    assert!(matches!(
        w.poll_action(),
        Some(Action::DisconnectPeer {
            reason: PeerFault::BloomMismatch,
            ..
        })
    ));
}

#[test]
fn peer_rate_limit_drops_then_disconnects() {
    let cfg = Config {
        rate_limits: RateLimitConfig {
            peer_packets_per_sec: 5,
            disconnect_after_violations: 3,
            ..RateLimitConfig::default()
        },
        ..Config::default()
    };
    let mut w = with_peer(cfg, None);
    let empty = encode_messages(&[]);
    for _ in 0..7 {
        w.handle_peer_message(Time(T0_MS), 1, codes::MESSAGES, &empty);
    }
    assert_eq!(w.stats().rate_limited, 2);
    assert_eq!(w.poll_action(), None);
    // A second later the bucket is full again.
    for _ in 0..5 {
        w.handle_peer_message(Time(T0_MS + 1_000), 1, codes::MESSAGES, &empty);
    }
    assert_eq!(w.stats().rate_limited, 2);
    w.handle_peer_message(Time(T0_MS + 1_000), 1, codes::MESSAGES, &empty);
    assert_eq!(
        w.poll_action(),
        Some(Action::DisconnectPeer {
            peer: 1,
            reason: PeerFault::RateLimited { what: "peer" }
        })
    );
}

#[test]
fn ip_limit_is_shared_and_topic_limit_drops_envelopes() {
    let cfg = Config {
        rate_limits: RateLimitConfig {
            ip_packets_per_sec: 3,
            topic_envelopes_per_sec: 2,
            ..RateLimitConfig::default()
        },
        ..Config::default()
    };
    let mut w = with_peer(cfg, None);
    // A second peer from the same IP shares the IP bucket.
    w.handle_peer_connected_from(Time(T0_MS), 2, Some("10.0.0.1".parse().unwrap()));
    let status = StatusPacket {
        version: 6,
        min_pow: 0.0,
        bloom: None,
        light_node: false,
        confirmations_enabled: false,
        rate_limits: None,
    };
    w.handle_peer_message(Time(T0_MS), 2, codes::STATUS, &status.encode());
    let empty = encode_messages(&[]);
    w.handle_peer_message(Time(T0_MS), 1, codes::MESSAGES, &empty);
    w.handle_peer_message(Time(T0_MS), 2, codes::MESSAGES, &empty);
    let t0 = (T0_MS / 1000) as u32;
    let envs: Vec<Envelope> = (0..4u8).map(|i| sealed(t0, &[i], 0.002)).collect();
    w.handle_peer_message(Time(T0_MS), 1, codes::MESSAGES, &encode_messages(&envs));
    // That was the IP's third packet: processed; 2 of the 4 same-topic envelopes pass.
    assert_eq!(w.pool_len(), 2);
    assert_eq!(w.stats().rate_limited, 2);
    w.handle_peer_message(Time(T0_MS), 2, codes::MESSAGES, &empty);
    assert_eq!(w.stats().rate_limited, 3);
}

#[test]
fn rate_limits_are_advertised_and_honoured() {
    let cfg = Config {
        rate_limits: RateLimitConfig::status_defaults(),
        ..Config::default()
    };
    let mut w = Whisper::new(cfg, [1; 32], Time(T0_MS));
    w.handle_peer_connected(Time(T0_MS), 1);
    let Some(Action::Send {
        code: 0, payload, ..
    }) = w.poll_action()
    else {
        panic!()
    };
    let st = StatusPacket::decode(&payload).unwrap();
    assert_eq!(
        st.rate_limits,
        Some(RateLimits {
            ip_limit: 10,
            peer_id_limit: 5,
            topic_limit: 10
        })
    );
    // A peer advertising 1 packet/s gets at most one Messages packet per cycle.
    let small = Config {
        max_message_size: 2048,
        min_pow: 0.0,
        ..Config::default()
    };
    let limits = RateLimits {
        ip_limit: 0,
        peer_id_limit: 1,
        topic_limit: 0,
    };
    let mut w = with_peer(small, Some(limits));
    assert_eq!(w.peer_rate_limits(1), Some(limits));
    let sym = [5; 32];
    for i in 0..6u8 {
        let p = MessageParams {
            payload: vec![i; 600],
            pow_target: 0.0,
            ..chat_params("x", b"")
        };
        w.post(Time(T0_MS), p, &sym).unwrap();
    }
    let mut now = Time(T0_MS);
    let mut packets = Vec::new();
    for _ in 0..10 {
        now = now.plus_millis(300);
        w.handle_timeout(now);
        let mut this_cycle = 0;
        while let Some(a) = w.poll_action() {
            if let Action::Send {
                code: codes::MESSAGES,
                payload,
                ..
            } = a
            {
                this_cycle += 1;
                packets.extend(decode_messages(&payload).unwrap());
            }
        }
        assert!(this_cycle <= 1);
        if packets.len() == 6 {
            break;
        }
        // Keep the gossip timer armed as a real node would on new traffic.
        let p = MessageParams {
            payload: vec![],
            pow_target: 0.0,
            ttl_secs: 1,
            ..chat_params("y", b"")
        };
        let _ = w.post(now, p, &sym);
    }
    assert!(packets.len() >= 6, "all envelopes eventually sent");
}

// ---------------------------------------------------------------------------------------------
// Pool bounds and gossip properties under a flood
// ---------------------------------------------------------------------------------------------

#[test]
fn pool_is_bounded_by_bytes() {
    let cfg = Config {
        max_pool_bytes: 700,
        min_pow: 0.0,
        ..Config::default()
    };
    let mut w = Whisper::new(cfg, [2; 32], Time(T0_MS));
    let sym = [4; 32];
    for ttl in [30u32, 20, 40, 50] {
        let p = MessageParams {
            ttl_secs: ttl,
            pow_target: 0.0,
            ..chat_params("x", b"y")
        };
        let _ = w.post(Time(T0_MS), p, &sym);
        assert!(w.pool_bytes() <= 700);
    }
    // Each envelope's size() is 20 + 256 (padded plaintext) + 16 (tag) + 12 (nonce) = 304
    // bytes: two fit, and each later post evicts the soonest-expiring one.
    assert_eq!(w.pool_len(), 2);
    assert_eq!(w.stats().pool_evictions, 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random posts on a ring of 5 nodes with small pools: no envelope is ever sent twice over
    /// the same directed link, none goes back to the node it came from, pools stay within
    /// both bounds, and everything expires.
    #[test]
    fn gossip_rules_hold_under_a_flood(
        posts in proptest::collection::vec((0usize..5, 0u64..3_000, 1u32..20, 0u8..4), 1..60),
        max_envelopes in 3usize..30,
    ) {
        let cfg = Config {
            max_envelopes,
            max_pool_bytes: max_envelopes * 400,
            min_pow: 0.0,
            ..Config::default()
        };
        let links = vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)];
        let mut net = Net::new(vec![cfg; 5], links);
        let mut posts = posts;
        posts.sort_by_key(|p| p.1);
        for (i, (node, at, ttl, topic)) in posts.into_iter().enumerate() {
            net.run_until(Time(T0_MS + at));
            let p = MessageParams {
                payload: (i as u32).to_be_bytes().to_vec(),
                ttl_secs: ttl,
                pow_target: 0.0,
                topic: Topic([topic; 4]),
                ..chat_params("x", b"")
            };
            let now = net.now;
            let _ = net.nodes[node].post(now, p, &[6; 32]);
            net.pump();
            for n in &net.nodes {
                prop_assert!(n.pool_len() <= max_envelopes);
                prop_assert!(n.pool_bytes() <= max_envelopes * 400);
            }
        }
        net.run_until(Time(T0_MS + 3_000 + 2_000));
        let mut seen = BTreeSet::new();
        for &(from, to, h) in &net.sent {
            prop_assert!(seen.insert((from, to, h)), "sent twice over {from}->{to}");
        }
        for &(from, to, h) in &net.sent {
            // The first time `from` heard h from a peer, that peer must not be `to`.
            let first_in = net.sent.iter().position(|&(_, t, x)| t == from && x == h);
            let out = net.sent.iter().position(|&(f, t, x)| (f, t, x) == (from, to, h));
            if let (Some(i), Some(o)) = (first_in, out) {
                if i < o {
                    prop_assert_ne!(net.sent[i].0, to, "echoed back to its sender");
                }
            }
        }
        prop_assert!(net.disconnects.is_empty());
        net.run_until(Time(T0_MS + 3_000 + 25_000));
        for n in &net.nodes {
            prop_assert_eq!(n.pool_len(), 0, "everything expired");
            prop_assert_eq!(n.pool_bytes(), 0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mailserver
// ---------------------------------------------------------------------------------------------

const MS_KEY: [u8; 32] = [0x42; 32];

fn mailserver_config() -> Config {
    Config {
        mailserver: Some(MailserverConfig {
            sym_key: Some(MS_KEY),
            ..MailserverConfig::default()
        }),
        ..Config::default()
    }
}

/// Node 0 = mailserver, node 1 = poster, node 2 = client with an empty bloom (gets nothing by
/// gossip). Node 1 posts `n` messages one second apart, then everything expires from pools.
fn mailserver_net(n: u8) -> (Net, Vec<[u8; 32]>) {
    let client = Config {
        topic_bloom: true,
        ..Config::default()
    };
    let mut net = Net::new(
        vec![mailserver_config(), Config::default(), client],
        vec![(0, 1), (0, 2)],
    );
    net.nodes[2].set_identity(key(9));
    let sym = sym_key_from_password(b"status");
    let mut hashes = Vec::new();
    for i in 0..n {
        let at = Time(T0_MS + u64::from(i) * 1_000);
        net.run_until(at);
        let h = net.nodes[1]
            .post(at, chat_params("status", &[b'm', i]), &sym)
            .unwrap();
        hashes.push(h);
    }
    net.run_until(Time(T0_MS + 60_000));
    assert_eq!(net.nodes[0].pool_len(), 0);
    (net, hashes)
}

fn history_request(lower: u32, limit: u32, cursor: Vec<u8>, batch: bool) -> RequestPayload {
    RequestPayload {
        lower,
        upper: (T0_MS / 1000) as u32 + 100,
        bloom: chat_filter("status").topics[0].bloom(),
        limit,
        cursor,
        batch,
    }
}

fn completions(actions: &[Action]) -> Vec<RequestCompletion> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestComplete { completion, .. } => Some(completion.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn mailserver_archives_and_serves_paginated_history() {
    let (mut net, hashes) = mailserver_net(5);
    let archived: Vec<[u8; 32]> = net.other[0]
        .iter()
        .filter_map(|a| match a {
            Action::Archive { hash, .. } => Some(*hash),
            _ => None,
        })
        .collect();
    let mut sorted = hashes.clone();
    sorted.sort();
    let mut got = archived.clone();
    got.sort();
    assert_eq!(got, sorted, "every envelope archived once");
    assert!(net.delivered[2].is_empty(), "client got nothing by gossip");

    net.nodes[2].add_filter(chat_filter("status")).unwrap();
    let lower = (T0_MS / 1000) as u32;
    let enc = Encryption::Symmetric(MS_KEY);
    let mut cursor = Vec::new();
    let mut pages = 0;
    loop {
        let now = net.now;
        let id = net.nodes[2]
            .request_history(
                now,
                0,
                &history_request(lower, 2, cursor.clone(), true),
                &enc,
            )
            .unwrap();
        net.pump();
        pages += 1;
        let c = completions(&net.other[2]).pop().unwrap();
        assert_eq!(c.request_id, id);
        assert_eq!(c.error, None);
        if c.cursor.is_empty() {
            break;
        }
        assert_eq!(c.cursor.len(), 36);
        cursor = c.cursor;
        assert!(pages < 10);
    }
    // Pages of 2, 2, 1 (the last page has no cursor since it is not full).
    assert_eq!(pages, 3);
    let texts: Vec<Vec<u8>> = net.delivered[2]
        .iter()
        .map(|(_, m)| m.payload.clone())
        .collect();
    let want: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'm', i]).collect();
    assert_eq!(texts, want, "all five, once each, oldest first");
    assert_eq!(net.nodes[0].stats().requests_served, 3);
    assert!(net.nodes[2].is_trusted(0));
}

#[test]
fn mailserver_non_batch_errors_untrusted_and_restart() {
    let (mut net, _) = mailserver_net(3);
    net.nodes[2].add_filter(chat_filter("status")).unwrap();
    let lower = (T0_MS / 1000) as u32;
    // Non-batch: one 127 packet per envelope (check on the wire via a fresh request).
    let now = net.now;
    net.nodes[2]
        .request_history(
            now,
            0,
            &history_request(lower, 0, vec![], false),
            &Encryption::Symmetric(MS_KEY),
        )
        .unwrap();
    net.pump();
    assert_eq!(net.delivered[2].len(), 3);
    assert_eq!(net.nodes[0].stats().envelopes_served, 3);
    // Wrong key → ERROR= completion, peer kept.
    let id = net.nodes[2]
        .request_history(
            now,
            0,
            &history_request(lower, 0, vec![], true),
            &Encryption::Symmetric([1; 32]),
        )
        .unwrap();
    net.pump();
    let c = completions(&net.other[2]).pop().unwrap();
    assert_eq!(c.request_id, id);
    assert!(c.error.is_some());
    assert_eq!(net.nodes[0].stats().requests_failed, 1);
    assert!(net.disconnects.is_empty());
    // Without an identity a request cannot be signed.
    assert_eq!(
        net.nodes[1].request_history(
            now,
            0,
            &history_request(lower, 0, vec![], true),
            &Encryption::Symmetric(MS_KEY)
        ),
        Err(WhisperError::NoIdentity)
    );
    // 127 from an untrusted peer is ignored.
    let e = sealed(lower, b"z", 0.0);
    net.nodes[1].send_p2p(now, 0, &e).unwrap();
    net.pump();
    assert_eq!(net.nodes[0].stats().untrusted_ignored, 1);
    // Restart: a new mailserver replays the persisted envelopes and serves the same page.
    let raws: Vec<Vec<u8>> = net.other[0]
        .iter()
        .filter_map(|a| match a {
            Action::Archive { raw, .. } => Some(raw.clone()),
            _ => None,
        })
        .collect();
    let mut fresh = Whisper::new(mailserver_config(), [5; 32], now);
    for r in &raws {
        assert_eq!(fresh.restore_archived(r), Ok(true));
    }
    assert_eq!(fresh.restore_archived(&raws[0]), Ok(false));
    let bloom = chat_filter("status").topics[0].bloom();
    let a = net.nodes[0]
        .archive()
        .unwrap()
        .query(0, u32::MAX, &bloom, 100, &[]);
    let b = fresh
        .archive()
        .unwrap()
        .query(0, u32::MAX, &bloom, 100, &[]);
    assert_eq!(a, b);
    assert_eq!(a.envelopes.len(), 3);
    let mut plain = Whisper::new(Config::default(), [5; 32], now);
    assert_eq!(
        plain.restore_archived(&raws[0]),
        Err(WhisperError::NotMailserver)
    );
}

#[test]
fn mailserver_accepts_list_form_and_asymmetric_requests() {
    let cfg = Config {
        mailserver: Some(MailserverConfig::default()),
        ..Config::default()
    };
    let mut ms = with_peer(cfg, None);
    let ms_key = key(20);
    ms.set_identity(ms_key);
    let t0 = (T0_MS / 1000) as u32;
    let e = sealed(t0, b"hello", 0.002);
    ms.handle_peer_message(
        Time(T0_MS),
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&e)),
    );
    assert!(matches!(ms.poll_action(), Some(Action::Archive { .. })));
    while ms.poll_action().is_some() {}
    // List form.
    let req = MessagesRequest {
        id: vec![7; 32],
        from: t0 - 10,
        to: t0 + 10,
        limit: 10,
        cursor: vec![],
        bloom: e.bloom().0.to_vec(),
    };
    ms.handle_peer_message(Time(T0_MS), 1, codes::P2P_REQUEST, &req.encode());
    let Some(Action::Send {
        code: codes::P2P_MESSAGE,
        payload,
        ..
    }) = ms.poll_action()
    else {
        panic!()
    };
    assert_eq!(decode_p2p_messages(&payload).unwrap(), vec![e.clone()]);
    let Some(Action::Send {
        code: codes::P2P_REQUEST_COMPLETE,
        payload,
        ..
    }) = ms.poll_action()
    else {
        panic!()
    };
    let c = RequestCompletion::decode(&payload).unwrap();
    assert_eq!(c.request_id, [7; 32]);
    assert_eq!(c.last_envelope_hash, e.hash());
    // Asymmetric (no password configured): encrypted to the mailserver's node key.
    let mut client = with_peer(Config::default(), None);
    client.set_identity(key(21));
    let payload = history_request(t0 - 10, 0, vec![], true);
    let enc = Encryption::Asymmetric(crate::ecies::public_key(&ms_key));
    client
        .request_history(Time(T0_MS), 1, &payload, &enc)
        .unwrap();
    let Some(Action::Send {
        code: codes::P2P_REQUEST,
        payload,
        ..
    }) = client.poll_action()
    else {
        panic!()
    };
    ms.handle_peer_message(Time(T0_MS), 1, codes::P2P_REQUEST, &payload);
    assert!(matches!(
        ms.poll_action(),
        Some(Action::Send {
            code: codes::P2P_MESSAGE,
            ..
        })
    ));
    assert_eq!(ms.stats().requests_served, 2);
    // Undecodable 126 → the peer is dropped.
    ms.handle_peer_message(Time(T0_MS), 1, codes::P2P_REQUEST, &[0xc0]);
    while let Some(a) = ms.poll_action() {
        if let Action::DisconnectPeer { reason, .. } = a {
            assert!(matches!(reason, PeerFault::Malformed { code: 126, .. }));
            return;
        }
    }
    panic!("not disconnected");
}

#[test]
fn archive_cursor_bloom_and_bounds() {
    let mut a = mailserver::Archive::new(4, 1 << 20);
    let mk = |sent: u32, topic: u8| Envelope {
        expiry: sent + 10,
        ttl: 10,
        // Spread bloom bits over distinct bytes (the bloom assignment quirk merges nearby ones).
        topic: Topic([topic * 10, topic * 10 + 70, topic * 10 + 150, 0]),
        data: vec![topic; 8],
        nonce: u64::from(sent),
    };
    for (sent, topic) in [(100, 1), (101, 2), (102, 1), (103, 1), (104, 1)] {
        let e = mk(sent, topic);
        a.insert(e.view(), e.hash(), e.encode());
    }
    // Capacity 4: the oldest (sent 100) was evicted.
    assert_eq!(a.len(), 4);
    assert_eq!(a.evictions(), 1);
    let bloom = Topic([10, 80, 160, 0]).bloom();
    let p1 = a.query(0, 200, &bloom, 2, &[]);
    assert_eq!(p1.envelopes, vec![mk(102, 1).encode(), mk(103, 1).encode()]);
    assert_eq!(p1.cursor.len(), 36);
    assert_eq!(&p1.cursor[..4], &103u32.to_be_bytes());
    let p2 = a.query(0, 200, &bloom, 2, &p1.cursor);
    assert_eq!(p2.envelopes, vec![mk(104, 1).encode()]);
    assert!(p2.cursor.is_empty());
    assert_eq!(p2.last_envelope_hash, mk(104, 1).hash());
    assert!(a.query(103, 102, &bloom, 2, &[]).envelopes.is_empty());
    assert_eq!(a.query(0, 200, &Bloom::FULL, 10, &[]).envelopes.len(), 4);
    // An older envelope than everything a full archive keeps is refused.
    let old = mk(50, 1);
    assert!(!a.insert(old.view(), old.hash(), old.encode()));
}

#[test]
fn request_complete_go_forms() {
    let ok = RequestCompletion {
        request_id: [1; 32],
        last_envelope_hash: [2; 32],
        cursor: vec![3; 36],
        error: None,
    };
    let enc = ok.encode();
    assert_eq!(&enc[..2], &[0xb8, 100]);
    assert_eq!(RequestCompletion::decode(&enc).unwrap(), ok);
    let only_id = crate::rlp::encode_bytes(&[1; 32]);
    let c = RequestCompletion::decode(&only_id).unwrap();
    assert_eq!((c.last_envelope_hash, c.cursor.len()), ([0; 32], 0));
    let err = RequestCompletion {
        request_id: [1; 32],
        last_envelope_hash: [0; 32],
        cursor: vec![],
        error: Some("boom".into()),
    };
    let e = err.encode();
    assert!(e[1..].starts_with(b"ERROR="));
    assert_eq!(RequestCompletion::decode(&e).unwrap(), err);
    assert!(RequestCompletion::decode(&crate::rlp::encode_bytes(&[0; 101])).is_err());
    assert!(RequestCompletion::decode(&crate::rlp::encode_bytes(&[0; 31])).is_err());
    // Message response layout: [1, [hash, [[hash, code, desc]]]].
    let r = MessageResponse {
        batch_hash: [9; 32],
        errors: vec![EnvelopeError {
            hash: [8; 32],
            code: mailserver::ENVELOPE_TIME_NOT_SYNCED,
            description: "very old envelope".into(),
        }],
    };
    assert_eq!(MessageResponse::decode(&r.encode()).unwrap(), r);
    // The request payload is the strict 6-item list; 5 items fail like Go.
    let req = history_request(1, 2, vec![], true);
    assert_eq!(RequestPayload::decode(&req.encode()).unwrap(), req);
    let mut five = crate::rlp::Encoder::new();
    five.list(|e| {
        e.u64(1).u64(2).bytes(&[0; 64]).u64(3).bytes(&[]);
    });
    assert!(RequestPayload::decode(&five.finish()).is_err());
}

proptest! {
    #[test]
    fn mailserver_decoders_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = RequestPayload::decode(&bytes);
        let _ = MessagesRequest::decode(&bytes).map(|r| r.validate());
        let _ = RequestCompletion::decode(&bytes);
        let _ = MessageResponse::decode(&bytes);
        let _ = mailserver::decode_batch_ack(&bytes);
        let _ = decode_p2p_messages(&bytes);
        let _ = decode_rate_limits_packet(&bytes);
        let _ = decode_messages_hashed(&bytes);
    }

    #[test]
    fn mailserver_codecs_roundtrip_and_truncations(
        lower in any::<u32>(), upper in any::<u32>(), limit in any::<u32>(), batch in any::<bool>(),
        cursor in proptest::option::of(any::<[u8; 32]>()), desc in "[a-z ]{0,40}", code in any::<u64>(),
    ) {
        let cursor = cursor.map(|c| { let mut v = c.to_vec(); v.extend_from_slice(&lower.to_be_bytes()); v }).unwrap_or_default();
        let req = RequestPayload { lower, upper, bloom: Bloom([limit as u8; 64]), limit, cursor: cursor.clone(), batch };
        let enc = req.encode();
        prop_assert_eq!(RequestPayload::decode(&enc).unwrap(), req);
        for i in 0..enc.len() { prop_assert!(RequestPayload::decode(&enc[..i]).is_err()); }
        let c = RequestCompletion { request_id: [lower as u8; 32], last_envelope_hash: [upper as u8; 32], cursor, error: None };
        let enc = c.encode();
        prop_assert_eq!(RequestCompletion::decode(&enc).unwrap(), c);
        for i in 0..enc.len() { let _ = RequestCompletion::decode(&enc[..i]); }
        let r = MessageResponse { batch_hash: [1; 32], errors: vec![EnvelopeError { hash: [2; 32], code, description: desc }] };
        let enc = r.encode();
        prop_assert_eq!(MessageResponse::decode(&enc).unwrap(), r);
        for i in 0..enc.len() { prop_assert!(MessageResponse::decode(&enc[..i]).is_err()); }
    }
}

#[test]
fn memoised_signer_recovery_agrees_with_the_primitive() {
    use crate::whisper::message::recover_signer_uncached;
    for i in 1u8..20 {
        let secret = SecretKey::from_byte_array(&[i; 32]).unwrap();
        let digest = crate::keccak::keccak256(&[i]);
        let sig = sign_recoverable(&secret, &digest);
        let direct = recover_signer_uncached(&sig, &digest).unwrap();
        assert_eq!(recover_signer(&sig, &digest).unwrap(), direct);
        assert_eq!(recover_signer(&sig, &digest).unwrap(), direct, "cached");
        assert_eq!(direct, secret.public_key(crate::ecies::secp()));
        // A bad recovery id is an error every time, never a cached key.
        let mut bad = sig;
        bad[64] = 27;
        assert!(recover_signer(&bad, &digest).is_err());
        assert!(recover_signer(&bad, &digest).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Per-peer gossip queues
// ---------------------------------------------------------------------------------------------

fn connect_full_peer(w: &mut Whisper, now: Time, peer: PeerKey) {
    w.handle_peer_connected(now, peer);
    let status = StatusPacket {
        version: 6,
        min_pow: 0.0,
        bloom: None,
        light_node: false,
        confirmations_enabled: false,
        rate_limits: None,
    };
    w.handle_peer_message(now, peer, codes::STATUS, &status.encode());
}

/// Fires due timers at `now` and returns the envelopes sent to each peer, in packet order.
fn gossip_at(w: &mut Whisper, now: Time) -> BTreeMap<PeerKey, Vec<[u8; 32]>> {
    w.handle_timeout(now);
    let mut out: BTreeMap<PeerKey, Vec<[u8; 32]>> = BTreeMap::new();
    while let Some(a) = w.poll_action() {
        if let Action::Send {
            peer,
            code: codes::MESSAGES,
            payload,
        } = a
        {
            let hashes = decode_messages_hashed(&payload).unwrap();
            out.entry(peer)
                .or_default()
                .extend(hashes.into_iter().map(|(_, h)| h));
        }
    }
    out
}

#[test]
fn gossip_queues_never_echo_never_repeat_lose_nothing() {
    let cfg = Config {
        min_pow: 0.0,
        ..Config::default()
    };
    let t0 = Time(T0_MS);
    let now_s = (T0_MS / 1000) as u32;
    let mut w = Whisper::new(cfg, seed_from_u64(3), t0);
    for p in 1..=3 {
        connect_full_peer(&mut w, t0, p);
    }
    while w.poll_action().is_some() {}
    let a = sealed(now_s, b"a", 0.0);
    let b = sealed(now_s, b"b", 0.0);
    let (ha, hb) = (a.hash(), b.hash());

    // A from peer 1: offered to 2 and 3, never back to 1.
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&a)),
    );
    let sent = gossip_at(&mut w, t0.plus_millis(300));
    assert_eq!(sent.get(&1), None, "echo to the sender");
    assert_eq!(sent.get(&2), Some(&vec![ha]));
    assert_eq!(sent.get(&3), Some(&vec![ha]));

    // A again from peer 2 (byte-identical): a duplicate, recognised without decoding; nothing
    // is scheduled and later cycles send nothing.
    w.handle_peer_message(
        t0.plus_millis(400),
        2,
        codes::MESSAGES,
        &encode_messages(&[a]),
    );
    assert_eq!(w.stats().duplicates, 1);
    assert_eq!(w.stats().envelopes_received, 2);
    assert!(gossip_at(&mut w, t0.plus_millis(900)).is_empty(), "repeat");

    // B from peer 2, and from peer 3 before our cycle: only peer 1 still needs it.
    w.handle_peer_message(
        t0.plus_millis(1000),
        2,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&b)),
    );
    w.handle_peer_message(
        t0.plus_millis(1100),
        3,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&b)),
    );
    let sent = gossip_at(&mut w, t0.plus_millis(1300));
    assert_eq!(sent.into_iter().collect::<Vec<_>>(), vec![(1, vec![hb])]);

    // A peer that connects later gets the whole pool, in hash order, in one packet.
    connect_full_peer(&mut w, t0.plus_millis(1400), 4);
    let sent = gossip_at(&mut w, t0.plus_millis(1700));
    let mut both = vec![ha, hb];
    both.sort();
    assert_eq!(sent.into_iter().collect::<Vec<_>>(), vec![(4, both)]);
    assert_eq!(w.stats().envelopes_sent, 2 + 1 + 2);

    // Past expiry (TTL 15 s) a byte-identical copy still pooled is refused by the clock check,
    // as a decoded one would be, and after the purge nothing is left to offer.
    let late = t0.plus_millis(16_500);
    w.handle_peer_message(late, 1, codes::MESSAGES, &encode_messages(&[b]));
    assert_eq!(w.stats().dropped_expired, 1);
    assert_eq!(w.stats().duplicates, 2);
    let sent = gossip_at(&mut w, t0.plus_millis(17_000));
    assert!(sent.is_empty());
    assert_eq!(w.pool_len(), 0);
    connect_full_peer(&mut w, t0.plus_millis(17_100), 5);
    assert!(
        gossip_at(&mut w, t0.plus_millis(18_000)).is_empty(),
        "expired offered"
    );
}

#[test]
fn gossip_queue_holds_what_a_peer_cannot_take_yet() {
    // An envelope below a peer's PoW requirement stays queued (not marked known) and is sent
    // once the peer lowers its requirement; others get it at once.
    let cfg = Config {
        min_pow: 0.0,
        ..Config::default()
    };
    let t0 = Time(T0_MS);
    let now_s = (T0_MS / 1000) as u32;
    let mut w = Whisper::new(cfg, seed_from_u64(4), t0);
    for p in 1..=3 {
        connect_full_peer(&mut w, t0, p);
    }
    w.handle_peer_message(t0, 3, codes::POW_REQUIREMENT, &encode_pow_requirement(1e9));
    while w.poll_action().is_some() {}
    let a = sealed(now_s, b"a", 0.0);
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&a)),
    );
    let sent = gossip_at(&mut w, t0.plus_millis(300));
    assert_eq!(
        sent.into_iter().collect::<Vec<_>>(),
        vec![(2, vec![a.hash()])]
    );
    w.handle_peer_message(
        t0.plus_millis(400),
        3,
        codes::POW_REQUIREMENT,
        &encode_pow_requirement(0.0),
    );
    // Nothing new was pooled, so no cycle is due; the next one (any new envelope) carries it.
    let b = sealed(now_s, b"b", 0.0);
    w.handle_peer_message(
        t0.plus_millis(500),
        2,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&b)),
    );
    let sent = gossip_at(&mut w, t0.plus_millis(800));
    let mut for3 = vec![a.hash(), b.hash()];
    for3.sort();
    assert_eq!(sent.get(&3), Some(&for3));
    assert_eq!(sent.get(&1), Some(&vec![b.hash()]));
    assert_eq!(sent.get(&2), None);
}

#[test]
fn duplicates_with_colliding_fingerprints_are_told_apart_by_bytes() {
    // Same nonce = same last 8 bytes (the lookup fingerprint); different data.
    let cfg = Config {
        min_pow: 0.0,
        ..Config::default()
    };
    let t0 = Time(T0_MS);
    let now_s = (T0_MS / 1000) as u32;
    let mut w = Whisper::new(cfg, seed_from_u64(5), t0);
    connect_full_peer(&mut w, t0, 1);
    connect_full_peer(&mut w, t0, 2);
    while w.poll_action().is_some() {}
    let env = |data: Vec<u8>| Envelope {
        expiry: now_s + 10,
        ttl: 10,
        topic: Topic([1, 2, 3, 4]),
        data,
        nonce: 0x0102_0304_0506_0708,
    };
    let (a, b) = (env(vec![1; 40]), env(vec![2; 40]));
    assert_ne!(a.hash(), b.hash());
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&a)),
    );
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&b)),
    );
    assert_eq!(w.pool_len(), 2);
    assert_eq!(w.stats().duplicates, 0);
    // Each copy from peer 2 is a duplicate of its own original, and peer 2 is then not sent it.
    w.handle_peer_message(
        t0,
        2,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&b)),
    );
    assert_eq!(w.stats().duplicates, 1);
    assert_eq!(w.pool_len(), 2);
    let sent = gossip_at(&mut w, t0.plus_millis(300));
    assert_eq!(
        sent.into_iter().collect::<Vec<_>>(),
        vec![(2, vec![a.hash()])]
    );
    let t1 = t0.plus_millis(400);
    w.handle_peer_message(t1, 2, codes::MESSAGES, &encode_messages(&[a, b]));
    assert_eq!(w.stats().duplicates, 3);
}

#[test]
fn password_filter_derives_its_key_on_first_envelope_and_delivers_like_a_symmetric_one() {
    let mut net = Net::line(2, Config::default());
    let topic = Topic::from_bytes(&crate::keccak::keccak256(b"status"));
    let lazy = net.nodes[1]
        .add_filter(Filter::symmetric_password(vec![topic], b"status".to_vec()))
        .unwrap();
    // A wrong password on the same topic must not open it.
    let wrong = net.nodes[1]
        .add_filter(Filter::symmetric_password(vec![topic], b"other".to_vec()))
        .unwrap();
    let eager = net.nodes[1].add_filter(chat_filter("status")).unwrap();
    let sym = sym_key_from_password(b"status");
    for text in [&b"one"[..], b"two"] {
        net.nodes[0]
            .post(net.now, chat_params("status", text), &sym)
            .unwrap();
    }
    net.run_until(Time(T0_MS + 2_000));
    let mut got: Vec<(FilterId, Vec<u8>)> = net.delivered[1]
        .iter()
        .map(|(f, m)| (*f, m.payload.clone()))
        .collect();
    got.sort();
    let mut want = vec![
        (lazy, b"one".to_vec()),
        (lazy, b"two".to_vec()),
        (eager, b"one".to_vec()),
        (eager, b"two".to_vec()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(got.iter().all(|(f, _)| *f != wrong));
    // Removing it drops the derived key with the filter.
    assert!(net.nodes[1].remove_filter(lazy));
}

// ---------------------------------------------------------------------------------------------
// PoW from a midstate and envelopes read in place (issue 14 items 3–4)
// ---------------------------------------------------------------------------------------------

/// The PoW hash as the formulas state it, with the whole input built and hashed per nonce.
fn plain_pow_digest(formula: PowFormula, rlp: &[u8], nonce: u64) -> [u8; 32] {
    let nonce_be = nonce.to_be_bytes();
    match formula {
        PowFormula::Current => crate::keccak::keccak256_concat(&[rlp, &nonce_be]),
        PowFormula::Legacy => crate::keccak::keccak256_concat(&[
            &crate::keccak::keccak256(rlp),
            &[0u8; 24],
            &nonce_be,
        ]),
    }
}

/// Zero bits of a PoW digest, counted bit by bit (leading for current, trailing for legacy).
fn plain_bits(formula: PowFormula, h: &[u8; 32]) -> u32 {
    let bit = |i: usize| h[i / 8] >> (7 - i % 8) & 1;
    match formula {
        PowFormula::Current => (0..256).take_while(|&i| bit(i) == 0).count() as u32,
        PowFormula::Legacy if h.iter().all(|&b| b == 0) => 0,
        PowFormula::Legacy => (0..256).rev().take_while(|&i| bit(i) == 0).count() as u32,
    }
}

/// Go's PoW value from the plain digest: `2^bits / len / (TTL + diff)`.
fn plain_pow(formula: PowFormula, env: &Envelope, diff: u32) -> f64 {
    let rlp = env.rlp_without_nonce();
    let h = plain_pow_digest(formula, &rlp, env.nonce);
    let bits = plain_bits(formula, &h);
    let len = match formula {
        PowFormula::Current => rlp.len(),
        PowFormula::Legacy => env.size(),
    };
    2f64.powi(bits as i32) / len as f64 / f64::from(env.ttl.wrapping_add(diff))
}

fn checks_against_plain(env: &Envelope, nonces: &[u64]) -> Result<(), TestCaseError> {
    let rlp = env.rlp_without_nonce();
    let raw = env.encode();
    let view = EnvelopeView::decode(&raw).unwrap();
    prop_assert_eq!(view.rlp_without_nonce_len(), rlp.len());
    prop_assert_eq!(view.hash(), crate::keccak::keccak256(&raw));
    prop_assert_eq!(view.to_envelope(), env.clone());
    for formula in [PowFormula::Current, PowFormula::Legacy] {
        let from_rlp = PowHasher::new(formula, &[&rlp]);
        let from_raw = view.pow_hasher(formula);
        for &nonce in nonces {
            let want = plain_pow_digest(formula, &rlp, nonce);
            prop_assert_eq!(from_rlp.digest(nonce), want);
            prop_assert_eq!(from_raw.digest(nonce), want);
        }
        for diff in [0, 3] {
            let want = plain_pow(formula, env, diff);
            prop_assert_eq!(env.pow(formula, diff), want);
            prop_assert_eq!(view.pow(formula, diff), want);
        }
    }
    Ok(())
}

#[test]
fn pow_midstate_equals_plain_hash_at_every_length_around_the_block_boundaries() {
    // Data lengths 0..=420 put RLP-without-nonce lengths on, just below and just above the
    // 136-byte rate and its multiples (and across the 55/56-byte list-header change).
    for len in 0..=420usize {
        let env = Envelope {
            expiry: 1_600_000_050,
            ttl: 50,
            topic: Topic([1, 2, 3, 4]),
            data: (0..len).map(|i| (i * 13 + 5) as u8).collect(),
            nonce: len as u64 * 0x9e37_79b9,
        };
        checks_against_plain(&env, &[0, 1, env.nonce, u64::MAX]).unwrap();
    }
}

#[test]
fn seal_finds_the_nonce_a_plain_search_finds() {
    for formula in [PowFormula::Current, PowFormula::Legacy] {
        for len in [10usize, 130, 140, 2_000] {
            let mut env = Envelope {
                expiry: 1_000,
                ttl: 50,
                topic: Topic([9, 8, 7, 6]),
                data: vec![0x42; len],
                nonce: 0,
            };
            let target = env.pow_target_bits(0.002) + 2;
            let rlp = env.rlp_without_nonce();
            let plain = (77u64..).find(|&n| {
                let h = plain_pow_digest(formula, &rlp, n);
                plain_bits(formula, &h) >= target
            });
            let tried = env.seal(formula, 0.002 * 4.0, 77, 1 << 22).unwrap();
            assert_eq!(Some(env.nonce), plain, "{formula:?} len {len}");
            assert_eq!(tried, env.nonce - 77 + 1);
        }
    }
}

proptest! {
    #[test]
    fn pow_midstate_equals_plain_hash(expiry in any::<u32>(), ttl in 1u32..u32::MAX, topic in any::<[u8; 4]>(),
                                      data in proptest::collection::vec(any::<u8>(), 0..1_200),
                                      nonce in any::<u64>(), others in proptest::collection::vec(any::<u64>(), 0..4)) {
        let env = Envelope { expiry, ttl, topic: Topic(topic), data, nonce };
        let mut nonces = others;
        nonces.push(nonce);
        checks_against_plain(&env, &nonces)?;
    }

    #[test]
    fn envelope_view_is_total_and_agrees_with_the_owned_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let owned = Envelope::decode(&bytes);
        let view = EnvelopeView::decode(&bytes);
        prop_assert_eq!(owned.is_ok(), view.is_ok());
        if let (Ok(o), Ok(v)) = (owned, view) {
            prop_assert_eq!(v.to_envelope(), o);
        }
    }

    #[test]
    fn envelope_view_rejects_every_truncation(expiry in any::<u32>(), ttl in any::<u32>(), topic in any::<[u8; 4]>(),
                                              data in proptest::collection::vec(any::<u8>(), 0..300), nonce in any::<u64>()) {
        let env = Envelope { expiry, ttl, topic: Topic(topic), data, nonce };
        let enc = env.encode();
        prop_assert_eq!(EnvelopeView::decode(&enc).unwrap().to_envelope(), env);
        for cut in 0..enc.len() {
            prop_assert!(EnvelopeView::decode(&enc[..cut]).is_err());
        }
    }
}

#[test]
fn a_copy_found_by_its_bytes_whose_slot_was_reused_in_the_same_packet_is_not_a_duplicate() {
    // Pool of one: X is pooled. A packet [Y, X]: Y (expiring later) evicts X and takes its slot;
    // the X copy, found pooled by its bytes when the packet was decoded, must not be taken for
    // a duplicate of what that slot holds now (Y).
    let cfg = Config {
        min_pow: 0.0,
        max_envelopes: 1,
        ..Config::default()
    };
    let t0 = Time(T0_MS);
    let now_s = (T0_MS / 1000) as u32;
    let mut w = Whisper::new(cfg, seed_from_u64(6), t0);
    connect_full_peer(&mut w, t0, 1);
    while w.poll_action().is_some() {}
    let x = sealed(now_s, b"x", 0.0);
    let mut y = sealed(now_s + 5, b"y", 0.0);
    y.nonce = 1;
    assert!(y.expiry > x.expiry);
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(std::slice::from_ref(&x)),
    );
    assert!(w.has_envelope(&x.hash()));
    w.handle_peer_message(
        t0,
        1,
        codes::MESSAGES,
        &encode_messages(&[y.clone(), x.clone()]),
    );
    assert!(w.has_envelope(&y.hash()));
    assert!(!w.has_envelope(&x.hash()));
    assert_eq!(w.pool_len(), 1);
    assert_eq!(w.stats().duplicates, 0);
    assert_eq!(w.stats().evicted_in_packet, 1);
    assert_eq!(w.stats().envelopes_received, 3);
    assert!(w
        .poll_action()
        .into_iter()
        .all(|a| !matches!(a, Action::DisconnectPeer { .. })));
}

// ---------------------------------------------------------------------------------------------
// Early broadcast: a full batch does not wait for the end of the cycle
// ---------------------------------------------------------------------------------------------

/// Posts envelopes of about `size` bytes until `poll_timeout` says a broadcast is due now;
/// returns how many were posted.
fn post_until_due(w: &mut Whisper, now: Time, size: usize, max: usize) -> usize {
    for i in 0..max {
        let p = MessageParams {
            payload: vec![i as u8; size],
            pow_target: 0.0,
            ..chat_params("batch", b"")
        };
        w.post(now, p, &[7; 32]).unwrap();
        if w.poll_timeout() == Some(now) {
            return i + 1;
        }
    }
    max
}

fn messages_sent(w: &mut Whisper) -> (usize, usize) {
    let (mut packets, mut envelopes) = (0, 0);
    while let Some(a) = w.poll_action() {
        if let Action::Send {
            code: codes::MESSAGES,
            payload,
            ..
        } = a
        {
            packets += 1;
            envelopes += decode_messages(&payload).unwrap().len();
        }
    }
    (packets, envelopes)
}

#[test]
fn a_full_batch_is_broadcast_at_once_and_a_small_one_waits_for_the_cycle() {
    let t0 = Time(T0_MS);
    let mut w = with_peer(
        Config {
            min_pow: 0.0,
            ..Config::default()
        },
        None,
    );
    // One small post: the broadcast waits for the cycle, as Go's `transmissionCycle`.
    let p = MessageParams {
        payload: vec![1; 100],
        pow_target: 0.0,
        ..chat_params("batch", b"")
    };
    w.post(t0, p, &[7; 32]).unwrap();
    assert_eq!(
        w.poll_timeout(),
        Some(t0.plus_millis(BROADCAST_INTERVAL_MS))
    );
    // Enough new bytes for a batch: due now.
    let posted = 1 + post_until_due(&mut w, t0, 1000, 200);
    assert!(posted < 200, "never due early");
    // Each envelope is the 1,000 B payload plus < 300 B of padding, signature and framing.
    assert!(posted * 1300 >= EARLY_BROADCAST_BYTES, "{posted} posts");
    assert!(
        posted * 1000 <= EARLY_BROADCAST_BYTES + 2000,
        "{posted} posts"
    );
    w.handle_timeout(t0);
    assert_eq!(messages_sent(&mut w), (1, posted));
    // Nothing new: no broadcast is due now.
    assert!(w.poll_timeout().is_none_or(|t| t > t0));

    // Off: the same traffic waits for the cycle.
    let mut w = with_peer(
        Config {
            min_pow: 0.0,
            early_broadcast_bytes: 0,
            ..Config::default()
        },
        None,
    );
    assert_eq!(post_until_due(&mut w, t0, 1000, 100), 100);
    assert_eq!(
        w.poll_timeout(),
        Some(t0.plus_millis(BROADCAST_INTERVAL_MS))
    );
}

#[test]
fn a_peer_packet_budget_holds_across_early_broadcasts_and_what_it_holds_back_still_goes() {
    let t0 = Time(T0_MS);
    let limits = RateLimits {
        ip_limit: 0,
        peer_id_limit: 1,
        topic_limit: 0,
    };
    let mut w = with_peer(
        Config {
            min_pow: 0.0,
            max_message_size: 4096,
            early_broadcast_bytes: 1500,
            ..Config::default()
        },
        Some(limits),
    );
    // Six envelopes of ~1 kB: every second one makes a broadcast due at once, but the peer
    // takes one packet (of at most 4 kB) per cycle.
    let mut sent = 0;
    let mut now = t0;
    for round in 0..3 {
        assert_eq!(post_until_due(&mut w, now, 900, 10), 2, "round {round}");
        w.handle_timeout(now);
        let (packets, envelopes) = messages_sent(&mut w);
        assert!(packets <= 1);
        sent += envelopes;
        now = now.plus_millis(10);
    }
    // No new traffic from here on: the held-back envelopes go at the following cycles.
    for _ in 0..10 {
        let Some(at) = w.poll_timeout() else { break };
        now = now.max(at);
        w.handle_timeout(now);
        let (packets, envelopes) = messages_sent(&mut w);
        assert!(packets <= 1, "one packet per cycle");
        sent += envelopes;
        if sent == 6 {
            break;
        }
    }
    assert_eq!(sent, 6, "everything held back was sent without new traffic");
}
