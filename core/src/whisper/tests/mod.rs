//! Whisper tests: codec and vector checks here, with the in-test router and the helpers the
//! rooms share; each room is one concern.

use super::mailserver::{self, decode_p2p_messages};
use super::*;
use crate::rng::{rng_from_seed, seed_from_u64};
use crate::time::Time;
use proptest::prelude::*;
use secp256k1::SecretKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

mod early_broadcast;
mod filters;
mod gossip;
mod history;
mod limits;
mod network;
mod pool;
mod pow;

const WHISPER_VECTORS: &str = include_str!("../../../../testdata/vectors/whisperv6_vectors.json");
const DERIVED: &str = include_str!("../../../../testdata/vectors/derived_local_checks.json");

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
