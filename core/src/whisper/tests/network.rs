//! Multi-peer behaviour over the in-test router: delivery, PoW and time faults, handshakes, bloom mode, pool bounds.

use super::*;

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
    assert_eq!(w.post(Time(T0_MS), p, &sym), Err(WhisperError::PoolFull));
}
