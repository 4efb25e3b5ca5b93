//! MVDS through the whole stack over real TCP with loss injected in the driver (issue 6):
//! two `hush node --datasync` processes exchange 1:1 messages both ways while B's driver loses
//! outgoing chunks (each loss fails the connection and keeps B's network down for longer than
//! the envelopes' Whisper TTL, so what was in flight is really lost). Every message must still
//! arrive exactly once, and the senders must have retransmitted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hush_drivers::driver::INJECTED_LOSS_PREFIX;
use hush_tests::{dm_counts, key_of, NodeProcess};

/// Bound on the whole test (outages and MVDS back-off take a while).
const TIMEOUT_SECS: u64 = 180;
/// Messages each way.
const MESSAGES: usize = 12;
/// Whisper TTL of every post: short, so that an outage outlives the envelopes in flight.
const TTL_SECS: &str = "2";
/// Network down time after each injected loss, ms (> TTL).
const OUTAGE_MS: &str = "3000";

fn stats(node: &mut NodeProcess, deadline: Instant) -> serde_json::Value {
    node.send_line("/stats");
    let line = node.wait_stdout(deadline, |l| l.contains("\"reply\":\"stats\""));
    serde_json::from_str(&line).unwrap()
}

#[test]
fn datasync_delivers_exactly_once_through_injected_loss() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    // Retransmit with a capped exponential back-off: status-go's schedule roughly doubles the
    // time since start at every retransmission, far too slow for a test with frequent losses.
    let common = [
        "--json",
        "--datasync",
        "--datasync-retransmission",
        "exponential:2000",
        "--message-ttl-secs",
        TTL_SECS,
    ];
    let mut a = NodeProcess::spawn("A", &[&["--listen", "127.0.0.1:0"], &common[..]].concat());
    let enode_a = a.enode(deadline);
    let peer_a = enode_a.to_string();
    let lossy = [
        "--peer",
        &peer_a,
        "--inject-loss",
        "0.25",
        "--inject-outage-ms",
        OUTAGE_MS,
        "--inject-seed",
        "6",
        // Losses are frequent here: keep redialing every 2 s at most, not up to 2 min.
        "--redial-max-ms",
        "2000",
    ];
    let mut b = NodeProcess::spawn("B", &[&lossy[..], &common[..]].concat());
    let enode_b = b.enode(deadline);
    b.wait_connected(deadline, &enode_a);
    let (ka, kb) = (key_of(&enode_a), key_of(&enode_b));

    let want: Vec<String> = (0..MESSAGES).map(|i| format!("a to b {i}")).collect();
    let want_back: Vec<String> = (0..MESSAGES).map(|i| format!("b to a {i}")).collect();
    for i in 0..MESSAGES {
        a.send_line(&format!("/dm {kb} {}", want[i]));
        b.send_line(&format!("/dm {ka} {}", want_back[i]));
        std::thread::sleep(Duration::from_millis(400));
    }
    // Wait until each side has every message.
    for (node, name, texts) in [(&b, "B", &want), (&a, "A", &want_back)] {
        let other = if name == "A" { &b } else { &a };
        loop {
            let got = dm_counts(&node.transcript(), name);
            if texts.iter().all(|t| got.contains_key(t)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is missing {:?}\n{}\n{}",
                texts
                    .iter()
                    .filter(|t| !got.contains_key(*t))
                    .collect::<Vec<_>>(),
                node.transcript(),
                other.transcript()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    // Give late duplicates a chance to show before counting.
    std::thread::sleep(Duration::from_secs(2));
    for (node, name, texts) in [(&b, "B", &want), (&a, "A", &want_back)] {
        let got = dm_counts(&node.transcript(), name);
        let expected: BTreeMap<String, usize> = texts.iter().map(|t| (t.clone(), 1)).collect();
        assert_eq!(
            got, expected,
            "{name}: every message exactly once, nothing else"
        );
    }
    // Loss really happened, and MVDS repaired it.
    let losses = b
        .transcript()
        .lines()
        .filter(|l| l.contains(INJECTED_LOSS_PREFIX))
        .count();
    assert!(losses > 0, "no loss was injected\n{}", b.transcript());
    let (sa, sb) = (stats(&mut a, deadline), stats(&mut b, deadline));
    let retransmissions =
        sa["mvds.retransmissions"].as_u64().unwrap() + sb["mvds.retransmissions"].as_u64().unwrap();
    assert!(retransmissions > 0, "A: {sa}\nB: {sb}");
    assert_eq!(
        sb["driver.injected_dropped_chunks"].as_u64().unwrap() as usize,
        losses
    );
    eprintln!("injected losses {losses}, retransmissions {retransmissions}; A {sa}; B {sb}");
}
