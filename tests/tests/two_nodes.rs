//! End to end: two `hush node` processes on loopback join public chat `e2e`, connect, and each
//! receives the other's message with the right author key.

use std::time::{Duration, Instant};

use hush_core::p2p::enode::Enode;
use hush_drivers::output::PEER_CONNECTED_PREFIX;
use hush_tests::NodeProcess;

/// Bound on the whole test: generous, the machine may be busy (handshakes, PoW).
const TIMEOUT_SECS: u64 = 60;
const CHAT: &str = "e2e";

fn author(enode: &Enode) -> String {
    format!("0x04{}", hex::encode(enode.public_key))
}

/// Waits for `peer`'s message `text` on `node`'s stdout and checks the JSON line.
fn expect_message(node: &NodeProcess, deadline: Instant, text: &str, from: &str) {
    let line = node.wait_stdout(deadline, |l| l.contains(text));
    let v: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", node.transcript()));
    assert_eq!(v["chat"], CHAT, "{line}");
    assert_eq!(v["text"], text, "{line}");
    assert_eq!(v["from"], from, "{line}");
    assert!(
        v["clock"].as_u64().is_some() && v["timestamp"].as_u64().is_some(),
        "{line}"
    );
}

#[test]
fn two_nodes_exchange_public_chat_messages() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn("A", &["--listen", "127.0.0.1:0", "--join", CHAT, "--json"]);
    let first = a.next_stdout_line(deadline);
    let enode_a: Enode = first
        .parse()
        .unwrap_or_else(|e| panic!("A's first stdout line {first:?}: {e}"));
    assert_eq!(enode_a.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(enode_a.addr.port(), 0, "the real bound port is printed");

    let peer = enode_a.to_string();
    let mut b = NodeProcess::spawn("B", &["--peer", &peer, "--join", CHAT, "--json"]);
    let first = b.next_stdout_line(deadline);
    let enode_b: Enode = first
        .parse()
        .unwrap_or_else(|e| panic!("B's first stdout line {first:?}: {e}"));

    let key_b = hex::encode(enode_b.public_key);
    let key_a = hex::encode(enode_a.public_key);
    a.wait_stderr(deadline, |l| {
        l.starts_with(PEER_CONNECTED_PREFIX) && l.contains(&key_b)
    });
    b.wait_stderr(deadline, |l| {
        l.starts_with(PEER_CONNECTED_PREFIX) && l.contains(&key_a)
    });

    a.send_line(&format!("/send {CHAT} hello from A"));
    b.send_line(&format!("/send {CHAT} hello from B"));
    expect_message(&b, deadline, "hello from A", &author(&enode_a));
    expect_message(&a, deadline, "hello from B", &author(&enode_b));

    // Accepted messages were persisted (both the sent and the received one may be there).
    let persisted = std::fs::read_to_string(a.data_dir.join("messages.jsonl")).unwrap_or_default();
    assert!(
        persisted.contains("hello from B"),
        "A's messages.jsonl:\n{persisted}"
    );
}

#[test]
fn shared_helpers_watch_the_real_stderr_prefix() {
    assert_eq!(hush_tests::PEER_CONNECTED_PREFIX, PEER_CONNECTED_PREFIX);
}
