//! Per-peer gossip queues.

use super::*;

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
