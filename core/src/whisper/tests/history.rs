//! Mailserver history: archive, requests, completions.

use super::*;

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
