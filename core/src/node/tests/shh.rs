//! The `shh_` API through whole nodes: keys, filters, posts, subscriptions, Go's refusals.

use super::*;
use crate::whisper::api::ApiMessage;
use crate::whisper::Topic;

const TOPIC: Topic = Topic([0xff, 0xaa, 0xdd, 0x11]);

fn shh(net: &mut Net, node: usize, request: ShhRequest) -> Result<ShhResponse, ShhError> {
    let now = net.now;
    let r = net.nodes[node].handle_shh(now, request);
    net.flush();
    r
}

fn text(r: Result<ShhResponse, ShhError>) -> String {
    match r {
        Ok(ShhResponse::Text(t)) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

fn bytes(r: Result<ShhResponse, ShhError>) -> Vec<u8> {
    match r {
        Ok(ShhResponse::Bytes(b)) => b,
        other => panic!("expected bytes, got {other:?}"),
    }
}

fn messages(net: &mut Net, node: usize, filter: &str) -> Vec<ApiMessage> {
    match shh(net, node, ShhRequest::GetFilterMessages(filter.into())) {
        Ok(ShhResponse::Messages(m)) => m,
        other => panic!("expected messages, got {other:?}"),
    }
}

fn connected_pair() -> Net {
    let mut net = Net::new(2);
    net.connect(0, 1);
    net.advance(100);
    net
}

fn sym_post(key_id: &str, payload: &[u8]) -> NewMessage {
    NewMessage {
        sym_key_id: Some(key_id.into()),
        topic: TOPIC,
        payload: payload.to_vec(),
        ttl_secs: 10,
        pow_target: 0.01,
        ..NewMessage::default()
    }
}

#[test]
fn password_keys_carry_a_polled_message_and_the_chat_layer_sees_nothing() {
    let mut net = connected_pair();
    let k0 = text(shh(
        &mut net,
        0,
        ShhRequest::GenerateSymKeyFromPassword("pw".into()),
    ));
    let k1 = text(shh(
        &mut net,
        1,
        ShhRequest::GenerateSymKeyFromPassword("pw".into()),
    ));
    assert_eq!(
        bytes(shh(&mut net, 0, ShhRequest::GetSymKey(k0.clone()))),
        bytes(shh(&mut net, 1, ShhRequest::GetSymKey(k1.clone())))
    );
    let filter = text(shh(
        &mut net,
        1,
        ShhRequest::NewMessageFilter(Criteria {
            sym_key_id: Some(k1),
            topics: vec![TOPIC],
            ..Criteria::default()
        }),
    ));
    let hash = bytes(shh(&mut net, 0, ShhRequest::Post(sym_post(&k0, b"hello"))));
    net.advance(1_000);
    let got = messages(&mut net, 1, &filter);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"hello");
    assert_eq!(got[0].topic, TOPIC);
    assert_eq!(got[0].ttl_secs, 10);
    assert_eq!(got[0].hash.to_vec(), hash);
    assert_eq!(got[0].sig, None);
    assert!(messages(&mut net, 1, &filter).is_empty(), "taken once");
    assert!(net.received(1).is_empty());
    assert_eq!(
        shh(&mut net, 1, ShhRequest::DeleteMessageFilter(filter.clone())),
        Ok(ShhResponse::Bool(true))
    );
    assert!(matches!(
        shh(&mut net, 1, ShhRequest::GetFilterMessages(filter)),
        Err(ShhError::Api(_))
    ));
}

#[test]
fn signed_asymmetric_post_is_pushed_to_a_subscription() {
    let mut net = connected_pair();
    let signer = text(shh(&mut net, 0, ShhRequest::NewKeyPair));
    let signer_pub = bytes(shh(&mut net, 0, ShhRequest::GetPublicKey(signer.clone())));
    let receiver = text(shh(&mut net, 1, ShhRequest::NewKeyPair));
    let receiver_pub = bytes(shh(&mut net, 1, ShhRequest::GetPublicKey(receiver.clone())));
    assert_eq!(receiver_pub.len(), 65);
    assert_eq!(receiver_pub[0], 4);
    let sub = text(shh(
        &mut net,
        1,
        ShhRequest::Subscribe(Criteria {
            private_key_id: Some(receiver),
            sig: Some(signer_pub.clone()),
            ..Criteria::default()
        }),
    ));
    shh(
        &mut net,
        0,
        ShhRequest::Post(NewMessage {
            pub_key: Some(receiver_pub.clone()),
            sig: Some(signer),
            topic: TOPIC,
            payload: b"secret".to_vec(),
            pow_target: 0.01,
            ..NewMessage::default()
        }),
    )
    .unwrap();
    net.advance(1_000);
    let pushed: Vec<_> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::ShhMessage(p) if *i == 1 => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].filter, sub);
    assert_eq!(pushed[0].message.payload, b"secret");
    assert_eq!(pushed[0].message.sig.map(|s| s.to_vec()), Some(signer_pub));
    assert_eq!(
        pushed[0].message.recipient.map(|s| s.to_vec()),
        Some(receiver_pub)
    );
    assert_eq!(
        shh(&mut net, 1, ShhRequest::Unsubscribe(sub.clone())),
        Ok(ShhResponse::Bool(true))
    );
    assert!(shh(&mut net, 1, ShhRequest::Unsubscribe(sub)).is_err());
}

#[test]
fn target_peer_post_reaches_only_a_node_that_trusts_us() {
    let mut net = connected_pair();
    let k0 = text(shh(&mut net, 0, ShhRequest::AddSymKey(vec![7; 32])));
    let k1 = text(shh(&mut net, 1, ShhRequest::AddSymKey(vec![7; 32])));
    let filter = text(shh(
        &mut net,
        1,
        ShhRequest::NewMessageFilter(Criteria {
            sym_key_id: Some(k1),
            topics: vec![TOPIC],
            allow_p2p: true,
            ..Criteria::default()
        }),
    ));
    let to1 = NewMessage {
        target_peer: Some(net.nodes[1].public_key()),
        pow_target: 0.0,
        ..sym_post(&k0, b"direct 1")
    };
    shh(&mut net, 0, ShhRequest::Post(to1.clone())).unwrap();
    net.advance(500);
    assert!(
        messages(&mut net, 1, &filter).is_empty(),
        "untrusted sender"
    );
    let remote0 = net.nodes[0].public_key();
    assert_eq!(
        shh(&mut net, 1, ShhRequest::MarkTrustedPeer(remote0)),
        Ok(ShhResponse::Bool(true))
    );
    let to1 = NewMessage {
        payload: b"direct 2".to_vec(),
        ..to1
    };
    shh(&mut net, 0, ShhRequest::Post(to1)).unwrap();
    net.advance(500);
    let got = messages(&mut net, 1, &filter);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"direct 2");
    assert!(matches!(
        shh(&mut net, 1, ShhRequest::MarkTrustedPeer([9; 64])),
        Err(ShhError::PeerNotConnected(_))
    ));
}

#[test]
fn refusals_follow_go() {
    let mut net = Net::new(1);
    let sym = text(shh(&mut net, 0, ShhRequest::NewSymKey));
    let pair = text(shh(&mut net, 0, ShhRequest::NewKeyPair));
    let both = NewMessage {
        pub_key: Some(vec![4; 65]),
        ..sym_post(&sym, b"x")
    };
    assert_eq!(
        shh(&mut net, 0, ShhRequest::Post(both)),
        Err(ShhError::SymAsym)
    );
    assert_eq!(
        shh(&mut net, 0, ShhRequest::Post(NewMessage::default())),
        Err(ShhError::SymAsym)
    );
    let no_topic = NewMessage {
        topic: Topic([0; 4]),
        ..sym_post(&sym, b"x")
    };
    assert_eq!(
        shh(&mut net, 0, ShhRequest::Post(no_topic)),
        Err(ShhError::NoTopics)
    );
    let low = NewMessage {
        pow_target: 0.0,
        ..sym_post(&sym, b"x")
    };
    assert_eq!(
        shh(&mut net, 0, ShhRequest::Post(low)),
        Err(ShhError::TooLowPow)
    );
    let bad_pub = NewMessage {
        sym_key_id: None,
        pub_key: Some(vec![1, 2, 3]),
        ..sym_post(&sym, b"x")
    };
    assert_eq!(
        shh(&mut net, 0, ShhRequest::Post(bad_pub)),
        Err(ShhError::InvalidPublicKey)
    );
    assert!(matches!(
        shh(&mut net, 0, ShhRequest::Post(sym_post("nope", b"x"))),
        Err(ShhError::Api(_))
    ));
    assert_eq!(
        shh(
            &mut net,
            0,
            ShhRequest::NewMessageFilter(Criteria {
                sym_key_id: Some(sym.clone()),
                ..Criteria::default()
            })
        ),
        Err(ShhError::NoTopics)
    );
    assert_eq!(
        shh(
            &mut net,
            0,
            ShhRequest::NewMessageFilter(Criteria {
                private_key_id: Some(pair.clone()),
                sig: Some(vec![0; 3]),
                ..Criteria::default()
            })
        ),
        Err(ShhError::InvalidSigningPublicKey)
    );
    assert_eq!(
        shh(&mut net, 0, ShhRequest::SetBloomFilter(vec![0; 3])),
        Err(ShhError::BadBloomSize(3))
    );
    assert!(shh(&mut net, 0, ShhRequest::SetMaxMessageSize(u32::MAX)).is_err());
    assert!(shh(&mut net, 0, ShhRequest::SetMinPow(-1.0)).is_err());
    assert_eq!(
        shh(&mut net, 0, ShhRequest::DeleteKeyPair("nope".into())),
        Err(ShhError::KeyPairNotFound("nope".into()))
    );
    assert_eq!(
        shh(&mut net, 0, ShhRequest::DeleteKeyPair(pair.clone())),
        Ok(ShhResponse::Bool(true))
    );
    assert_eq!(
        shh(&mut net, 0, ShhRequest::HasKeyPair(pair)),
        Ok(ShhResponse::Bool(false))
    );
}

#[test]
fn settings_show_in_info() {
    let mut net = Net::new(1);
    assert_eq!(
        shh(&mut net, 0, ShhRequest::Version),
        Ok(ShhResponse::Text("6.0".into()))
    );
    shh(&mut net, 0, ShhRequest::SetMinPow(0.5)).unwrap();
    shh(&mut net, 0, ShhRequest::SetMaxMessageSize(2048)).unwrap();
    shh(&mut net, 0, ShhRequest::SetBloomFilter(vec![0xff; 64])).unwrap();
    match shh(&mut net, 0, ShhRequest::Info) {
        Ok(ShhResponse::Info(info)) => {
            assert_eq!(info.min_pow, 0.5);
            assert_eq!(info.max_message_size, 2048);
        }
        other => panic!("{other:?}"),
    }
    let pk = [0x42; 32];
    let id = text(shh(&mut net, 0, ShhRequest::AddPrivateKey(pk.to_vec())));
    assert_eq!(bytes(shh(&mut net, 0, ShhRequest::GetPrivateKey(id))), pk);
}
