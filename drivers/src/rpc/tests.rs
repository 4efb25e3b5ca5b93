use serde_json::json;

use super::jsonrpc::{INVALID_PARAMS, METHOD_NOT_FOUND};
use super::shh::{hex_bytes, parse_call, Call};
use super::*;

fn ctx(vhosts: &[&str]) -> Ctx {
    let (calls, _) = smol::channel::bounded(1);
    Ctx {
        config: RpcConfig {
            vhosts: vhosts.iter().map(|s| s.to_string()).collect(),
            ..RpcConfig::default()
        },
        calls,
        counters: Arc::new(RpcCounters::default()),
    }
}

#[test]
fn vhosts_follow_geth() {
    let c = ctx(&["localhost"]);
    for ok in [
        None,
        Some("localhost"),
        Some("LOCALHOST:8545"),
        Some("127.0.0.1:8545"),
        Some("10.1.2.3"),
        Some("[::1]:8545"),
        Some("::1"),
    ] {
        assert!(c.host_allowed(ok), "{ok:?}");
    }
    for no in [
        Some("evil.example"),
        Some("evil.example:8545"),
        Some("localhost.evil"),
    ] {
        assert!(!c.host_allowed(no), "{no:?}");
    }
    assert!(ctx(&["*"]).host_allowed(Some("anything")));
}

#[test]
fn listen_addresses_default_to_loopback() {
    assert_eq!(
        parse_listen("", DEFAULT_HTTP_PORT).unwrap(),
        "127.0.0.1:8545".parse().unwrap()
    );
    assert_eq!(
        parse_listen("9000", DEFAULT_WS_PORT).unwrap(),
        "127.0.0.1:9000".parse().unwrap()
    );
    assert_eq!(
        parse_listen("0.0.0.0", DEFAULT_WS_PORT).unwrap(),
        "0.0.0.0:8546".parse().unwrap()
    );
    assert!(parse_listen("nope:x", 1).is_err());
}

#[test]
fn params_are_checked_like_geth() {
    assert_eq!(
        parse_call("shh_nope", json!([])).unwrap_err().code,
        METHOD_NOT_FOUND
    );
    for (method, params) in [
        ("shh_version", json!([1])),
        ("shh_getSymKey", json!([])),
        ("shh_getSymKey", json!([7])),
        ("shh_addSymKey", json!(["abcd"])),
        ("shh_addSymKey", json!(["0xabc"])),
        ("shh_setMinPoW", json!(["x"])),
        ("shh_setMaxMessageSize", json!([-1])),
        ("shh_post", json!([{"topic": "0x1234"}])),
        ("shh_post", json!(["x"])),
        ("shh_newMessageFilter", json!([{"topics": "0x12345678"}])),
        ("shh_markTrustedPeer", json!(["enode://zz@1.2.3.4:1"])),
        ("shh_info", json!({"a": 1})),
    ] {
        assert_eq!(
            parse_call(method, params.clone()).unwrap_err().code,
            INVALID_PARAMS,
            "{method} {params}"
        );
    }
    assert_eq!(
        parse_call("shh_subscribe", json!(["logs", {}]))
            .unwrap_err()
            .code,
        METHOD_NOT_FOUND
    );
}

#[test]
fn post_and_criteria_take_gos_field_names() {
    let call = parse_call(
        "shh_post",
        json!([{"symKeyID": "k", "sig": "s", "ttl": 7, "topic": "0xffaadd11",
                "payload": "0x0102", "padding": "0x", "powTime": 3, "powTarget": 0.5,
                "pubKey": ""}]),
    )
    .unwrap();
    let Call::Shh(hush_core::node::ShhRequest::Post(m)) = call else {
        panic!("{call:?}")
    };
    assert_eq!(m.sym_key_id.as_deref(), Some("k"));
    assert_eq!(m.sig.as_deref(), Some("s"));
    assert_eq!((m.ttl_secs, m.pow_time_secs, m.pow_target), (7, 3, 0.5));
    assert_eq!(m.topic.0, [0xff, 0xaa, 0xdd, 0x11]);
    assert_eq!(m.payload, vec![1, 2]);
    assert!(m.padding.is_empty() && m.pub_key.is_none());
    let call = parse_call(
        "shh_subscribe",
        json!(["messages", {"privateKeyID": "p", "minPow": 0.2, "topics": ["0x01020304"],
                            "allowP2P": true, "sig": "0x04"}]),
    )
    .unwrap();
    let Call::Subscribe(c) = call else {
        panic!("{call:?}")
    };
    assert_eq!(c.private_key_id.as_deref(), Some("p"));
    assert_eq!(c.topics.len(), 1);
    assert!(c.allow_p2p);
    assert_eq!(c.sig, Some(vec![4]));
    assert_eq!(hex_bytes(&json!("0X0a"), 0).unwrap(), vec![10]);
}

#[test]
fn counters_are_named_rpc_dot() {
    let c = RpcCounters::default();
    c.parse_errors.fetch_add(2, Ordering::Relaxed);
    let list = c.list();
    assert!(list.iter().all(|(k, _)| k.starts_with("rpc.")));
    assert!(list.contains(&("rpc.parse_errors".to_string(), 2)));
}

fn pushed(filter: &str) -> hush_core::whisper::api::PushedMessage {
    hush_core::whisper::api::PushedMessage {
        filter: filter.into(),
        message: hush_core::whisper::api::ApiMessage {
            sig: None,
            ttl_secs: 1,
            timestamp_secs: 1,
            topic: hush_core::whisper::Topic([0; 4]),
            payload: vec![],
            padding: vec![],
            pow: 0.0,
            hash: [0; 32],
            recipient: None,
        },
    }
}

struct NoStack;

impl crate::driver::Stack for NoStack {
    fn public_key(&self) -> hush_core::node::NodePublicKey {
        [0; 64]
    }
    fn handle_connection(
        &mut self,
        _: hush_core::Time,
        _: hush_core::node::ConnId,
        _: hush_core::node::Direction,
    ) -> Result<(), hush_core::node::NodeError> {
        Ok(())
    }
    fn handle_bytes(&mut self, _: hush_core::Time, _: hush_core::node::ConnId, _: &[u8]) {}
    fn handle_connection_closed(&mut self, _: hush_core::Time, _: hush_core::node::ConnId) {}
    fn handle_command(
        &mut self,
        _: hush_core::Time,
        _: hush_core::node::Command,
    ) -> Result<(), hush_core::node::NodeError> {
        Ok(())
    }
    fn handle_timeout(&mut self, _: hush_core::Time) {}
    fn poll_action(&mut self) -> Option<hush_core::node::Action> {
        None
    }
    fn poll_timeout(&self) -> Option<hush_core::Time> {
        None
    }
    fn handle_dial_failed(&mut self, _: hush_core::Time, _: hush_core::node::ConnId) {}
    fn handle_shh(
        &mut self,
        _: hush_core::Time,
        request: hush_core::node::ShhRequest,
    ) -> Result<hush_core::node::ShhResponse, hush_core::node::ShhError> {
        match request {
            hush_core::node::ShhRequest::Subscribe(_) => {
                Ok(hush_core::node::ShhResponse::Text("sub".into()))
            }
            _ => Ok(hush_core::node::ShhResponse::Bool(true)),
        }
    }
}

#[test]
fn a_full_notification_queue_is_closed_and_the_subscription_forgotten() {
    let mut router = link::RpcRouter::new(Some(Arc::new(RpcCounters::default())));
    let (sink, queue) = smol::channel::bounded(2);
    let (reply, answer) = smol::channel::bounded(1);
    router.handle_call(
        &mut NoStack,
        hush_core::Time(0),
        RpcCall {
            request: hush_core::node::ShhRequest::Subscribe(Default::default()),
            reply,
            subscriber: Some(sink),
        },
    );
    assert_eq!(
        answer.try_recv().unwrap(),
        Ok(hush_core::node::ShhResponse::Text("sub".into()))
    );
    for _ in 0..3 {
        router.route(pushed("sub"));
    }
    // Two queued, the third found the queue full: closed, so the connection ends.
    assert!(queue.is_closed());
    assert_eq!(queue.len(), 2);
    let stats = router.stats();
    assert!(stats.contains(&("rpc.queues_overflowed".to_string(), 1)));
    assert!(stats.contains(&("rpc.subscriptions".to_string(), 0)));
    router.route(pushed("sub"));
    assert!(router
        .stats()
        .contains(&("rpc.orphan_notifications".to_string(), 1)));
}

mod totality {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::jsonrpc::handle;
    use super::super::shh::{parse_call, METHODS};
    use super::ctx;

    const KEYS: [&str; 14] = [
        "symKeyID",
        "pubKey",
        "sig",
        "ttl",
        "topic",
        "payload",
        "padding",
        "powTime",
        "powTarget",
        "targetPeer",
        "privateKeyID",
        "minPow",
        "topics",
        "allowP2P",
    ];

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::String),
            "0x[0-9a-f]{0,140}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        (0..KEYS.len()).prop_map(|i| KEYS[i].to_string()),
                        "[a-z]{1,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any parameters of any method give a call or an error, never a panic.
        #[test]
        fn parse_call_is_total(i in 0..METHODS.len(), params in arb_json()) {
            let _ = parse_call(METHODS[i], params);
        }

        /// Any body gets an answer or none (the node is not there: calls fail cleanly).
        #[test]
        fn handle_is_total(body in prop::collection::vec(any::<u8>(), 0..200), value in arb_json()) {
            let c = ctx(&["localhost"]);
            smol::block_on(async {
                let _ = handle(&c, &body, None).await;
                let _ = handle(&c, value.to_string().as_bytes(), None).await;
            });
        }
    }
}
