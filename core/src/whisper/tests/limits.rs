//! Confirmations, PoW-requirement and bloom tolerance, rate limits.

use super::*;

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
