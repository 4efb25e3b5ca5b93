//! Asymmetric messages, filters, light nodes.

use super::*;

fn hex_key(s: &str) -> SecretKey {
    SecretKey::from_byte_array(&hex::decode(s).unwrap().try_into().unwrap()).unwrap()
}

fn ecies_vectors() -> Value {
    serde_json::from_str(include_str!(
        "../../../../testdata/vectors/ecies_geth_vectors.json"
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
