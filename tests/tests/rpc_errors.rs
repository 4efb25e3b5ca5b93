//! JSON-RPC refusals against a real `hush node`: the standard error codes, batches,
//! notifications, an oversized body, foreign Host and Origin headers, subscriptions over
//! HTTP; each leaves the node answering, and each is counted in `/stats`.

use std::time::{Duration, Instant};

use hush_tests::rpc::{http_exchange, http_post, ws_connect_with, RpcNode, RPC_IO_TIMEOUT_SECS};
use serde_json::{json, Value};

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(RPC_IO_TIMEOUT_SECS)
}

fn post_json(node: &RpcNode, body: &str) -> Value {
    let (status, answer) = http_post(node.http, body, &[]);
    assert_eq!(status, 200, "{body}: {answer}");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{body}: {e}: {answer:?}"))
}

fn code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error code in {v}"))
}

/// The node's `/stats` counter `name`.
fn stat(node: &mut RpcNode, name: &str) -> u64 {
    node.process.send_line("/stats");
    let prefix = format!("stat {name} ");
    let line = node
        .process
        .wait_stdout(deadline(), |l| l.starts_with(&prefix));
    line[prefix.len()..].trim().parse().expect("number")
}

fn still_answers(node: &RpcNode) {
    assert_eq!(node.call("shh_version", json!([])), json!("6.0"));
}

#[test]
fn standard_error_codes_batches_and_notifications() {
    let mut node = RpcNode::start("rpc-errors", &[]);

    assert_eq!(code(&post_json(&node, "{\"jsonrpc\": \"2.0\", ")), -32700);
    assert_eq!(code(&post_json(&node, "[]")), -32600);
    assert_eq!(code(&post_json(&node, "42")), -32600);
    assert_eq!(
        code(&post_json(
            &node,
            r#"{"jsonrpc":"1.0","id":1,"method":"shh_version"}"#
        )),
        -32600
    );
    assert_eq!(
        code(&post_json(
            &node,
            r#"{"jsonrpc":"2.0","id":[1],"method":"shh_version"}"#
        )),
        -32600
    );
    assert_eq!(code(&node.call_raw("shh_nope", json!([]))), -32601);
    assert_eq!(code(&node.call_raw("eth_blockNumber", json!([]))), -32601);
    assert_eq!(code(&node.call_raw("shh_getSymKey", json!([]))), -32602);
    assert_eq!(code(&node.call_raw("shh_addSymKey", json!(["zz"]))), -32602);
    assert_eq!(
        code(&node.call_raw("shh_version", json!(["extra"]))),
        -32602
    );
    // A method's own refusal: -32000 with Go's text.
    let e = node.call_err("shh_getSymKey", json!(["unknown"]));
    assert_eq!(e["code"], json!(-32000));
    assert_eq!(e["message"], json!("non-existent key ID"));
    let e = node.call_err("shh_post", json!([{"topic": "0x01020304"}]));
    assert_eq!(
        e["message"],
        json!("specify either a symmetric or an asymmetric key")
    );
    // Subscriptions need a WebSocket.
    assert_eq!(
        code(&node.call_raw("shh_subscribe", json!(["messages", {"symKeyID": "x"}]))),
        -32601
    );

    // A batch: answers in order, one per call with an id; notifications get none.
    let batch = r#"[
        {"jsonrpc":"2.0","id":1,"method":"shh_version"},
        {"jsonrpc":"2.0","method":"shh_newSymKey"},
        {"jsonrpc":"2.0","id":"two","method":"shh_nope"},
        5,
        {"jsonrpc":"2.0","id":3,"method":"shh_hasSymKey","params":["x"]}
    ]"#;
    let answers = post_json(&node, batch);
    let answers = answers.as_array().expect("batch answer");
    assert_eq!(answers.len(), 4);
    assert_eq!(answers[0]["id"], json!(1));
    assert_eq!(answers[0]["result"], json!("6.0"));
    assert_eq!(answers[1]["id"], json!("two"));
    assert_eq!(code(&answers[1]), -32601);
    assert_eq!(code(&answers[2]), -32600);
    assert_eq!(answers[3]["result"], json!(false));
    // Only notifications: nothing to answer, an empty 200.
    let (status, body) = http_post(
        node.http,
        r#"{"jsonrpc":"2.0","method":"shh_newSymKey"}"#,
        &[],
    );
    assert_eq!((status, body.as_str()), (200, ""));
    // A batch over the limit is refused whole.
    let long: Vec<Value> = (0..1001)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"shh_version"}))
        .collect();
    assert_eq!(
        code(&post_json(&node, &Value::Array(long).to_string())),
        -32600
    );

    still_answers(&node);
    assert!(stat(&mut node, "rpc.parse_errors") >= 1);
    assert!(stat(&mut node, "rpc.invalid_requests") >= 4);
    assert!(stat(&mut node, "rpc.unknown_methods") >= 3);
    assert!(stat(&mut node, "rpc.invalid_params") >= 3);
    assert_eq!(stat(&mut node, "rpc.batches_too_long"), 1);
}

#[test]
fn oversized_bodies_foreign_hosts_and_origins_are_refused() {
    let mut node = RpcNode::start("rpc-guards", &["--ws-origins", "http://localhost"]);
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"shh_version"}"#;

    // 5 MiB + 1: 413, connection closed without reading the body into memory.
    let big = format!("\"{}\"", "a".repeat(5 * 1024 * 1024 - 1));
    let (status, _) = http_post(node.http, &big, &[]);
    assert_eq!(status, 413);
    // A head lying about a huge body is refused before any of it is read.
    let (status, _) = http_exchange(
        node.http,
        format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n",
            node.http
        )
        .as_bytes(),
    );
    assert_eq!(status, 413);

    // Host: an IP literal or localhost pass; another name is refused (DNS rebinding).
    let (status, _) = http_post(node.http, call, &[("Host", "localhost:8545")]);
    assert_eq!(status, 200);
    let (status, body) = http_post(node.http, call, &[("Host", "evil.example:8545")]);
    assert_eq!((status, body.as_str()), (403, "invalid host specified\n"));
    // A browser page on another origin (CORS off by default).
    let (status, _) = http_post(node.http, call, &[("Origin", "http://evil.example")]);
    assert_eq!(status, 403);
    // Not JSON, not POST.
    let (status, _) = http_post(node.http, call, &[("Content-Type", "text/plain")]);
    assert_eq!(status, 415);
    let (status, _) = http_exchange(
        node.http,
        format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", node.http).as_bytes(),
    );
    assert_eq!(status, 405);

    // WebSocket: foreign Origin and foreign Host refused, no Origin and localhost accepted.
    let refused = ws_connect_with(node.ws, &[("Origin", "http://evil.example")]);
    assert!(
        matches!(&refused, Err(tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    let refused = ws_connect_with(node.ws, &[("Host", "evil.example")]);
    assert!(
        matches!(&refused, Err(tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    ws_connect_with(node.ws, &[("Origin", "http://localhost")]).expect("allowed origin");

    still_answers(&node);
    assert_eq!(stat(&mut node, "rpc.http_bodies_too_large"), 2);
    assert_eq!(stat(&mut node, "rpc.http_forbidden_host"), 1);
    assert_eq!(stat(&mut node, "rpc.http_forbidden_origin"), 1);
    assert_eq!(stat(&mut node, "rpc.ws_handshakes_refused"), 2);
}

#[test]
fn cors_domain_allows_a_listed_origin() {
    let node = RpcNode::start("rpc-cors", &["--http-corsdomain", "https://app.example"]);
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"shh_version"}"#;
    let (status, _) = http_post(node.http, call, &[("Origin", "https://app.example")]);
    assert_eq!(status, 200);
    let (status, _) = http_post(node.http, call, &[("Origin", "https://other.example")]);
    assert_eq!(status, 403);
}
