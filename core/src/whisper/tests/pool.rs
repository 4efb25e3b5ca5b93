//! Pool bounds and gossip properties under a flood.

use super::*;

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

fn own_post(
    w: &mut Whisper,
    now: Time,
    ttl_secs: u32,
    text: &[u8],
) -> Result<[u8; 32], WhisperError> {
    let p = MessageParams {
        ttl_secs,
        pow_target: 0.0,
        ..chat_params("own", text)
    };
    w.post(now, p, &[4; 32])
}

#[test]
fn an_own_post_a_peer_still_awaits_is_never_evicted_and_a_full_pool_says_so() {
    let t0 = Time(T0_MS);
    let mut w = with_peer(
        Config {
            max_envelopes: 2,
            min_pow: 0.0,
            ..Config::default()
        },
        None,
    );
    own_post(&mut w, t0, 30, b"one").unwrap();
    own_post(&mut w, t0, 40, b"two").unwrap();
    // Both wait for the peer: a third post, even one expiring later, finds no room.
    assert_eq!(
        own_post(&mut w, t0, 50, b"three"),
        Err(WhisperError::PoolFull)
    );
    assert_eq!(w.stats().pool_evictions, 1);
    assert_eq!(w.pool_len(), 2);
    // Once they are gossiped, the soonest-expiring one may go.
    let due = w.poll_timeout().unwrap();
    w.handle_timeout(due);
    let mut sent = 0;
    while let Some(a) = w.poll_action() {
        if let Action::Send {
            code: codes::MESSAGES,
            payload,
            ..
        } = a
        {
            sent += decode_messages(&payload).unwrap().len();
        }
    }
    assert_eq!(sent, 2);
    own_post(&mut w, due, 50, b"three").unwrap();
    assert_eq!(w.pool_len(), 2);
    assert_eq!(w.stats().pool_evictions, 2);
}

#[test]
fn a_received_envelope_the_full_pool_refuses_is_still_delivered() {
    let t0 = Time(T0_MS);
    let mut w = with_peer(
        Config {
            max_envelopes: 1,
            min_pow: 0.0,
            ..Config::default()
        },
        None,
    );
    let filter = w
        .add_filter(Filter::symmetric(
            vec![chat_params("status", b"").topic],
            [3; 32],
        ))
        .unwrap();
    // Our own post, awaited by the peer, holds the only place.
    own_post(&mut w, t0, 60, b"mine").unwrap();
    let theirs = sealed((T0_MS / 1000) as u32, b"for us", 0.0);
    w.handle_peer_message(t0, 1, codes::MESSAGES, &encode_messages(&[theirs]));
    let delivered: Vec<_> = std::iter::from_fn(|| w.poll_action())
        .filter_map(|a| match a {
            Action::Deliver { filter: f, message } => Some((f, message.payload)),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![(filter, b"for us".to_vec())]);
    assert_eq!(w.pool_len(), 1, "refused by the pool, not forwarded");
    assert_eq!(w.stats().pool_evictions, 1);
    assert_eq!(w.stats().delivered, 1);
}
