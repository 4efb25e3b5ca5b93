//! Load on the JSON-RPC server of a real `hush node`: 1,000 concurrent idle WebSocket
//! connections against a limit of 100, and a burst of 10,000 `shh_post` calls. The node must
//! refuse the excess cleanly, stay responsive, and keep its memory bounded (RSS printed).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hush_tests::rpc::{http_post, parse_response, rss_kib, ws_connect, RpcNode};
use serde_json::{json, Value};

/// Idle WebSocket connections opened (the default limit is 100).
const IDLE_WS_CONNECTIONS: usize = 1000;
/// `shh_post` calls in the burst, sent as batches of [`POSTS_PER_BATCH`].
const BURST_POSTS: usize = 10_000;
const POSTS_PER_BATCH: usize = 100;

fn stat(node: &mut RpcNode, name: &str) -> u64 {
    node.process.send_line("/stats");
    let prefix = format!("stat {name} ");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = node
        .process
        .wait_stdout(deadline, |l| l.starts_with(&prefix));
    line[prefix.len()..].trim().parse().expect("number")
}

#[test]
fn idle_websocket_flood_is_refused_beyond_the_limit_and_the_node_answers() {
    let mut node = RpcNode::start("rpc-ws-flood", &[]);
    let limit = 100;
    let mut accepted = Vec::new();
    let mut refused = 0usize;
    for i in 0..IDLE_WS_CONNECTIONS {
        if i < limit {
            accepted.push(ws_connect(node.ws));
            continue;
        }
        // Over the limit: the server answers 503 at once, before any handshake.
        let mut s = TcpStream::connect(node.ws).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                node.ws
            )
            .as_bytes(),
        );
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        if parse_response(&raw).0 == 503 {
            refused += 1;
        }
    }
    assert_eq!(accepted.len(), limit);
    assert_eq!(refused, IDLE_WS_CONNECTIONS - limit);
    // Still answering over HTTP, with the idle connections held open.
    assert_eq!(node.call("shh_version", json!([])), json!("6.0"));
    assert_eq!(
        stat(&mut node, "rpc.ws_connections_refused"),
        (IDLE_WS_CONNECTIONS - limit) as u64
    );
    assert_eq!(stat(&mut node, "rpc.ws_open"), limit as u64);
    // Closing them frees the slots.
    drop(accepted);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stat(&mut node, "rpc.ws_open") != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "connections not released"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(ws_connect(node.ws));
}

#[test]
fn burst_of_ten_thousand_posts_leaves_the_node_responsive_and_bounded() {
    let node = RpcNode::start("rpc-burst", &[]);
    let pid = node.process.pid();
    let key = node.call("shh_newSymKey", json!([]));
    let before = rss_kib(pid).expect("rss");
    let mut ok = 0usize;
    let mut refused = 0usize;
    for batch in 0..BURST_POSTS / POSTS_PER_BATCH {
        let calls: Vec<Value> = (0..POSTS_PER_BATCH)
            .map(|i| {
                let n = batch * POSTS_PER_BATCH + i;
                json!({"jsonrpc": "2.0", "id": n, "method": "shh_post", "params": [{
                    "symKeyID": key, "topic": "0x01020304", "ttl": 10,
                    "payload": format!("0x{n:08x}"), "powTarget": 0.002}]})
            })
            .collect();
        let (status, body) = http_post(node.http, &Value::Array(calls).to_string(), &[]);
        assert_eq!(status, 200, "{body}");
        let answers: Vec<Value> = serde_json::from_str(&body).expect("batch answer");
        assert_eq!(answers.len(), POSTS_PER_BATCH);
        for a in answers {
            if a.get("result").is_some() {
                ok += 1;
            } else {
                // A full pool refuses with a method error; nothing else is acceptable.
                assert_eq!(a["error"]["code"], json!(-32000), "{a}");
                refused += 1;
            }
        }
    }
    let after = rss_kib(pid).expect("rss");
    eprintln!(
        "rpc burst: {BURST_POSTS} shh_post calls, {ok} pooled, {refused} refused; \
         RSS before {before} KiB, after {after} KiB"
    );
    assert_eq!(ok + refused, BURST_POSTS);
    assert!(ok > 0);
    // Bounded: the pool and its indexes are capped by the Whisper config (not by the number
    // of calls); 512 MiB is far above what 10,000 small envelopes need and far below what an
    // unbounded server would hold if it kept every request.
    assert!(
        after < before + 512 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert_eq!(node.call("shh_version", json!([])), json!("6.0"));
    let info = node.call("shh_info", json!([]));
    assert!(info["messages"].as_u64().unwrap() <= BURST_POSTS as u64);
}
