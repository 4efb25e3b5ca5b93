//! `kill -9` at arbitrary moments (issue 8): node C is SIGKILLed again and again, each time a
//! few milliseconds after it was handed messages to send and while messages to it are in
//! flight, then restarted on its data directory. In the end:
//! - every message A sent to C is in C's stored history after its last restart, and was
//!   printed at least once over all of C's lives (a message committed but not yet shown at a
//!   kill is printed at the restart, from the store's delivery cursor; one shown but not yet
//!   past the cursor is printed again: at-least-once, issue 16 item 3);
//! - every message C accepted (its stored history after the last restart says which) arrives at
//!   A exactly once, and A receives nothing C did not accept (state is committed before any
//!   byte leaves) — a reused message key or a lost ratchet step would show as a message A
//!   cannot decrypt, i.e. a missing one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hush_tests::{dm_counts, key_of, unique_temp_dir, NodeProcess};

const TIMEOUT_SECS: u64 = 240;
/// How long after handing C its lines each kill comes, ms: from "before it read them" to
/// "in the middle of sending".
const KILL_AFTER_MS: [u64; 12] = [0, 5, 10, 15, 20, 25, 30, 40, 60, 100, 150, 400];

#[test]
fn sigkill_at_any_moment_loses_nothing_over_mvds() {
    crash_loop(&[
        "--json",
        "--datasync",
        "--datasync-retransmission",
        "exponential:2000",
        "--redial-max-ms",
        "1000",
    ]);
}

/// Without MVDS: unsent messages are kept as outgoing records until posted and re-encrypted
/// with fresh keys after a restart; what is in the peers' Whisper pools reaches C on reconnect.
#[test]
fn sigkill_at_any_moment_loses_nothing_without_mvds() {
    crash_loop(&["--json", "--redial-max-ms", "1000"]);
}

fn crash_loop(common: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn("A", &[&["--listen", "127.0.0.1:0"], common].concat());
    let enode_a = a.enode(deadline);
    let ka = key_of(&enode_a);
    let peer_a = enode_a.to_string();
    let c_args: Vec<&str> = [&["--peer", peer_a.as_str()], common].concat();
    let mut c_dir = unique_temp_dir("crash-loop-C");
    let mut c_transcripts = String::new();
    let mut kc = String::new();
    let mut to_c = Vec::new();
    let mut from_c = Vec::new();

    for (round, kill_after_ms) in KILL_AFTER_MS.iter().enumerate() {
        let mut c = NodeProcess::spawn_in("C", c_dir, &c_args);
        let enode_c = c.enode(deadline);
        kc = key_of(&enode_c);
        c.wait_connected(deadline, &enode_a);
        for i in 0..2 {
            let text = format!("a to c {round}.{i}");
            a.send_line(&format!("/dm {kc} {text}"));
            to_c.push(text);
            let text = format!("c to a {round}.{i}");
            c.send_line(&format!("/dm {ka} {text}"));
            from_c.push(text);
        }
        std::thread::sleep(Duration::from_millis(*kill_after_ms));
        c_transcripts.push_str(&c.transcript());
        c_transcripts.push('\n');
        c_dir = c.stop_keep_data(); // SIGKILL
    }

    // Last life: C stays up until everything has settled.
    let mut c = NodeProcess::spawn_in("C", c_dir, &c_args);
    c.enode(deadline);
    // Which of C's messages did C accept, and which of A's does it hold? Its history knows.
    let history = |c: &mut NodeProcess| -> (Vec<String>, Vec<String>) {
        c.send_line(&format!("/history {ka}"));
        c.send_line("/whoami");
        let (mut own, mut from_a) = (Vec::new(), Vec::new());
        loop {
            let line = c.wait_stdout(deadline, |l| l.contains("\"reply\""));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["reply"] == "whoami" {
                return (own, from_a);
            }
            let text = v["text"].as_str().unwrap().to_string();
            if v["from"] == kc.as_str() {
                own.push(text);
            } else {
                from_a.push(text);
            }
        }
    };
    let accepted = |c: &mut NodeProcess| history(c).0;
    let c_accepted = accepted(&mut c);
    assert!(
        !c_accepted.is_empty(),
        "C accepted none of its messages in {} lives",
        KILL_AFTER_MS.len()
    );
    for t in &c_accepted {
        assert!(
            from_c.contains(t),
            "C's history has {t:?}, which it was never given"
        );
    }
    loop {
        let at_c: BTreeMap<String, usize> = history(&mut c).1.into_iter().map(|t| (t, 1)).collect();
        let at_a = dm_counts(&a.transcript(), "A");
        let done = to_c.iter().all(|t| at_c.contains_key(t))
            && c_accepted.iter().all(|t| at_a.contains_key(t));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C misses {:?}; A misses {:?}\n{}\n{c_transcripts}\n{}",
            to_c.iter()
                .filter(|t| !at_c.contains_key(*t))
                .collect::<Vec<_>>(),
            c_accepted
                .iter()
                .filter(|t| !at_a.contains_key(*t))
                .collect::<Vec<_>>(),
            a.transcript(),
            c.transcript()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(2));
    let all_c = format!("{c_transcripts}\n{}", c.transcript());
    let printed_c = dm_counts(&all_c, "C");
    let mut stored_c = history(&mut c).1;
    stored_c.sort();
    let mut want_c = to_c.clone();
    want_c.sort();
    assert_eq!(stored_c, want_c, "C holds every message from A, once");
    for text in printed_c.keys() {
        assert!(
            to_c.contains(text),
            "C printed {text:?}, which nobody sent it"
        );
    }
    for text in &to_c {
        assert!(
            printed_c.contains_key(text),
            "C stored {text:?} but never printed it in any life\n{all_c}"
        );
    }
    let at_a = dm_counts(&a.transcript(), "A");
    let want_a: BTreeMap<String, usize> = c_accepted.iter().map(|t| (t.clone(), 1)).collect();
    assert_eq!(
        at_a, want_a,
        "A: exactly C's accepted messages, once each (C was given {from_c:?})"
    );
    // Nothing C accepted before a kill is missing from its history afterwards.
    let c_again = accepted(&mut c);
    assert_eq!(c_again, c_accepted);
    eprintln!(
        "C accepted {} of {} messages it was given over {} kills; printed {} of A's {} ({} lines)",
        c_accepted.len(),
        from_c.len(),
        KILL_AFTER_MS.len(),
        printed_c.len(),
        to_c.len(),
        printed_c.values().sum::<usize>()
    );
}
