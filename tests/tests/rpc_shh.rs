//! Every `shh_` method over real JSON-RPC (HTTP, and WebSocket for subscriptions) against two
//! `hush node` processes on loopback.

use std::time::{Duration, Instant};

use hush_tests::rpc::{ws_call, ws_connect, ws_next, RpcNode, RPC_IO_TIMEOUT_SECS};
use serde_json::{json, Value};

const TOPIC: &str = "0xffaadd11";

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(RPC_IO_TIMEOUT_SECS)
}

/// Two connected nodes (`b` dials `a`) and their enode URLs.
fn pair() -> (RpcNode, RpcNode, String, String) {
    let a = RpcNode::start("rpc-a", &[]);
    let enode = a.process.enode(deadline());
    let b = RpcNode::start("rpc-b", &["--peer", &enode.to_string()]);
    let b_enode = b.process.enode(deadline());
    b.process.wait_connected(deadline(), &enode);
    a.process.wait_connected(deadline(), &b_enode);
    (a, b, enode.to_string(), b_enode.to_string())
}

fn poll_messages(node: &RpcNode, filter: &str) -> Vec<Value> {
    let end = deadline();
    loop {
        let got = node.call("shh_getFilterMessages", json!([filter]));
        let list = got.as_array().expect("array").clone();
        if !list.is_empty() {
            return list;
        }
        assert!(Instant::now() < end, "no message for filter {filter}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_shh_method_over_http_and_websocket() {
    let (a, b, a_enode, b_enode) = pair();

    // shh_version, shh_info, settings.
    assert_eq!(a.call("shh_version", json!([])), json!("6.0"));
    let info = a.call("shh_info", json!([]));
    for field in ["memory", "messages", "minPow", "maxMessageSize"] {
        assert!(info.get(field).is_some(), "{field} in {info}");
    }
    assert_eq!(
        a.call("shh_setMaxMessageSize", json!([2_000_000])),
        json!(true)
    );
    assert_eq!(a.call("shh_setMinPoW", json!([0.002])), json!(true));
    let info = a.call("shh_info", json!([]));
    assert_eq!(info["maxMessageSize"], json!(2_000_000));
    assert_eq!(info["minPow"], json!(0.002));
    let full_bloom = format!("0x{}", "ff".repeat(64));
    assert_eq!(
        a.call("shh_setBloomFilter", json!([full_bloom])),
        json!(true)
    );

    // Key pairs.
    let pair_a = a.call("shh_newKeyPair", json!([]));
    let pair_a = pair_a.as_str().unwrap();
    assert_eq!(pair_a.len(), 64);
    assert_eq!(a.call("shh_hasKeyPair", json!([pair_a])), json!(true));
    let pub_a = a.call("shh_getPublicKey", json!([pair_a]));
    assert_eq!(pub_a.as_str().unwrap().len(), 2 + 130);
    let secret = a.call("shh_getPrivateKey", json!([pair_a]));
    let imported = b.call("shh_addPrivateKey", json!([secret]));
    assert_eq!(b.call("shh_getPublicKey", json!([imported])), pub_a);
    assert_eq!(b.call("shh_deleteKeyPair", json!([imported])), json!(true));
    assert_eq!(b.call("shh_hasKeyPair", json!([imported])), json!(false));

    // Symmetric keys.
    let sym_a = a.call("shh_generateSymKeyFromPassword", json!(["rpc-test"]));
    let sym_b = b.call("shh_generateSymKeyFromPassword", json!(["rpc-test"]));
    let key = a.call("shh_getSymKey", json!([sym_a]));
    assert_eq!(b.call("shh_getSymKey", json!([sym_b])), key);
    let added = b.call("shh_addSymKey", json!([key]));
    assert_eq!(b.call("shh_hasSymKey", json!([added])), json!(true));
    assert_eq!(b.call("shh_deleteSymKey", json!([added])), json!(true));
    assert_eq!(b.call("shh_hasSymKey", json!([added])), json!(false));
    let fresh = a.call("shh_newSymKey", json!([]));
    assert_eq!(
        a.call("shh_getSymKey", json!([fresh]))
            .as_str()
            .unwrap()
            .len(),
        66
    );

    // Symmetric post, polled filter.
    let filter = b.call(
        "shh_newMessageFilter",
        json!([{"symKeyID": sym_b, "topics": [TOPIC]}]),
    );
    let filter = filter.as_str().unwrap();
    let hash = a.call(
        "shh_post",
        json!([{"symKeyID": sym_a, "ttl": 10, "topic": TOPIC, "payload": "0xc0ffee",
                "powTime": 1, "powTarget": 0.01}]),
    );
    let got = poll_messages(&b, filter);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["payload"], json!("0xc0ffee"));
    assert_eq!(got[0]["topic"], json!(TOPIC));
    assert_eq!(got[0]["hash"], hash);
    assert_eq!(got[0]["ttl"], json!(10));
    assert_eq!(
        b.call("shh_deleteMessageFilter", json!([filter])),
        json!(true)
    );
    assert_eq!(
        b.call_err("shh_getFilterMessages", json!([filter]))["message"],
        json!("filter not found")
    );

    // Subscription over WebSocket: a signed asymmetric post.
    let pair_b = b.call("shh_newKeyPair", json!([]));
    let pub_b = b.call("shh_getPublicKey", json!([pair_b]));
    let mut ws = ws_connect(b.ws);
    let sub = ws_call(
        &mut ws,
        1,
        "shh_subscribe",
        json!(["messages", {"privateKeyID": pair_b, "sig": pub_a}]),
    );
    let sub = sub["result"].as_str().expect("subscription id").to_string();
    a.call(
        "shh_post",
        json!([{"pubKey": pub_b, "sig": pair_a, "ttl": 10, "topic": TOPIC,
                "payload": "0x68656c6c6f", "powTarget": 0.01}]),
    );
    let note = ws_next(&mut ws);
    assert_eq!(note["method"], json!("shh_subscription"));
    assert_eq!(note["params"]["subscription"], json!(sub));
    let m = &note["params"]["result"];
    assert_eq!(m["payload"], json!("0x68656c6c6f"));
    assert_eq!(m["sig"], pub_a);
    assert_eq!(m["recipientPublicKey"], pub_b);
    assert_eq!(
        ws_call(&mut ws, 2, "shh_unsubscribe", json!([sub]))["result"],
        json!(true)
    );
    assert!(ws_call(&mut ws, 3, "shh_unsubscribe", json!([sub]))
        .get("error")
        .is_some());

    // markTrustedPeer and a targetPeer post (a direct P2P message, code 127).
    assert_eq!(b.call("shh_markTrustedPeer", json!([a_enode])), json!(true));
    let p2p_filter = b.call(
        "shh_newMessageFilter",
        json!([{"symKeyID": sym_b, "topics": [TOPIC], "allowP2P": true}]),
    );
    a.call(
        "shh_post",
        json!([{"symKeyID": sym_a, "topic": TOPIC, "payload": "0x0d", "targetPeer": b_enode}]),
    );
    let got = poll_messages(&b, p2p_filter.as_str().unwrap());
    assert_eq!(got[0]["payload"], json!("0x0d"));
}
