//! End to end with real processes: a node that was offline while a message was sent gets it
//! from a mailserver afterwards, and the mailserver's archive survives a restart.
//!
//! A = `--mailserver` (also joined, so the test sees when it has the message), B sends while C
//! does not exist yet; A is then killed and restarted on the same data directory (its SQLite
//! archive); C starts with `--mailserver-peer A` only, sends `/request CHAT`, and must print B's
//! message with B as author.

use std::time::{Duration, Instant};

use hush_drivers::output::HISTORY_DONE_PREFIX;
use hush_tests::NodeProcess;

/// Bound on the whole test: generous, the machine may be busy (handshakes, PoW, PBKDF2).
const TIMEOUT_SECS: u64 = 90;
const CHAT: &str = "offline-e2e";
const TEXT: &str = "sent while C was offline";

#[test]
fn offline_node_gets_messages_from_restarted_mailserver() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let ms_args = [
        "--mailserver",
        "--listen",
        "127.0.0.1:0",
        "--join",
        CHAT,
        "--json",
    ];
    let a = NodeProcess::spawn("A", &ms_args);
    let enode_a = a.enode(deadline);

    let peer_a = enode_a.to_string();
    let mut b = NodeProcess::spawn("B", &["--peer", &peer_a, "--join", CHAT, "--json"]);
    let enode_b = b.enode(deadline);
    a.wait_connected(deadline, &enode_b);
    b.wait_connected(deadline, &enode_a);

    b.send_line(&format!("/send {CHAT} {TEXT}"));
    // A prints it once it has pooled (and therefore archived) the envelope.
    a.wait_stdout(deadline, |l| l.contains(TEXT));

    // Restart A on the same data directory: the archive comes back from SQLite.
    let dir = a.stop_keep_data();
    assert!(dir.join("archive.sqlite").is_file());
    let a2 = NodeProcess::spawn_in("A2", dir, &ms_args);
    let enode_a2 = a2.enode(deadline);
    // B's chat message plus the contact codes A, B and A itself published (at least 1).
    a2.wait_stderr(deadline, |l| {
        l.strip_prefix("hush: mailserver archive loaded envelopes=")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 1)
    });

    let peer_a2 = enode_a2.to_string();
    let mut c = NodeProcess::spawn(
        "C",
        &["--mailserver-peer", &peer_a2, "--join", CHAT, "--json"],
    );
    let _enode_c = c.enode(deadline);
    c.wait_connected(deadline, &enode_a2);
    c.send_line(&format!("/request {CHAT}"));
    let line = c.wait_stdout(deadline, |l| l.contains(TEXT));
    let v: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", c.transcript()));
    assert_eq!(v["chat"], CHAT, "{line}");
    assert_eq!(v["text"], TEXT, "{line}");
    assert_eq!(
        v["from"],
        format!("0x04{}", hex::encode(enode_b.public_key)),
        "{line}"
    );
    c.wait_stderr(deadline, |l| l.starts_with(HISTORY_DONE_PREFIX));
    drop(b);
}
