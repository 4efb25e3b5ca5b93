//! Issue 14 §1: public `/send` lines piped into node A all at once all reach node B, each
//! once. The driver loop used to take input before timers, so while A was still reading its
//! stdin no gossip round ran: the posts it had accepted first expired (TTL) or were evicted
//! from its full pool before they were ever sent. Now due timers run between batches of input,
//! and A stops reading stdin while its writers are backed up, so an accepted post reaches the
//! wire within its TTL.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hush_tests::NodeProcess;

/// Bound on the whole test; generous, the machine may be busy.
const TIMEOUT_SECS: u64 = 240;
/// How long B may go without a new message before the rest counts as lost.
const STALL_SECS: u64 = 20;
const CHAT: &str = "piped";
/// Enough lines that the old loop spent several TTLs reading them before its first gossip
/// round, even on a quiet box (debug build, ≈ 0.5 ms per line there: ≈ 10 s), and more than the
/// Whisper pool holds (10,000); few enough for CI (the new loop reads them in a few seconds).
const MESSAGES: usize = 20_000;
/// Short, so that a post kept from the wire for seconds is lost, as it would be under load
/// with Status' 10 s.
const TTL_SECS: &str = "4";

#[test]
fn piped_public_sends_all_reach_the_peer_once() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn(
        "A",
        &[
            "--listen",
            "127.0.0.1:0",
            "--join",
            CHAT,
            "--message-ttl-secs",
            TTL_SECS,
        ],
    );
    let enode_a = a.enode(deadline);
    let peer = enode_a.to_string();
    let b = NodeProcess::spawn("B", &["--peer", &peer, "--join", CHAT, "--json"]);
    let enode_b = b.enode(deadline);
    a.wait_connected(deadline, &enode_b);
    b.wait_connected(deadline, &enode_a);

    let lines: String = (0..MESSAGES)
        .map(|i| format!("/send {CHAT} piped {i}\n"))
        .collect();
    a.send_text(&lines);

    let mut got = BTreeSet::new();
    let mut duplicates = Vec::new();
    while got.len() < MESSAGES {
        let stall = Instant::now() + Duration::from_secs(STALL_SECS);
        let Some(line) = b.try_wait_stdout(stall.min(deadline), |l| l.contains("\"piped ")) else {
            break;
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let text = v["text"].as_str().unwrap_or_default().to_string();
        if !got.insert(text.clone()) {
            duplicates.push(text);
        }
    }
    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|i| !got.contains(&format!("piped {i}")))
        .collect();
    if !missing.is_empty() {
        // Where they went: every non-zero counter of both nodes.
        let mut b = b;
        a.send_line("/stats");
        b.send_line("/stats");
        std::thread::sleep(Duration::from_secs(2));
        for line in a.transcript().lines().chain(b.transcript().lines()) {
            if line.contains("stat") && !line.ends_with(" 0") {
                eprintln!("{line}");
            }
        }
    }
    assert!(
        missing.is_empty(),
        "B got {} of {MESSAGES} piped messages; {} missing, first {:?}",
        got.len(),
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(duplicates.is_empty(), "printed twice: {duplicates:?}");
}
