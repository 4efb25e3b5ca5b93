//! Issue 16 item 3, "received but never shown": B receives a burst of `/dm --datasync` messages
//! from A and is SIGKILLed again and again at pseudo-random moments while receiving, then
//! restarted on its data directory. Every other life also ends right after a commit that
//! holds received messages, before their lines are printed (`--inject-crash-after-commits`,
//! a kill landing in that window, which plain random kills hit too rarely to test). A message B's store committed just before a kill used to
//! be lost for stdout: the line was never printed, and after the restart the message counts as
//! a duplicate. Now the store keeps a delivery cursor and B prints, at start, every message
//! past it. In the end the union of everything B printed over all its lives must be exactly
//! the set A sent (by text and by `message_id`, one id per text): at least once each; a repeat
//! is allowed only for a message printed just before a kill (at-least-once, see
//! `hush_drivers::driver`, "Delivery"), and consumers dedupe by `message_id`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hush_tests::{key_of, unique_temp_dir, NodeProcess};

/// Bound on the whole test (MVDS retransmits what each kill interrupted).
const TIMEOUT_SECS: u64 = 300;
/// Messages A sends to B.
const MESSAGES: usize = 200;
/// Times B is killed while receiving.
const KILLS: usize = 10;
/// Kill moments are drawn in `[0, MAX_KILL_AFTER_MS)` after B connected to A.
const MAX_KILL_AFTER_MS: u64 = 400;
/// Lives started with `--inject-crash-after-commits N`, N drawn in `[1, this]`.
const MAX_CRASH_AFTER_COMMITS: u64 = 3;
/// How long such a life may take to reach its crash before it is SIGKILLed instead, s.
const CRASH_WAIT_SECS: u64 = 10;
/// Seed of the kill moments (a fixed schedule, so a failure can be rerun).
const SEED: u64 = 0x16_03;

/// B's received 1:1 lines in a transcript: message id → texts printed under it, in order.
fn printed(transcript: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in transcript.lines() {
        let Some(json) = line.strip_prefix("[B out] ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            continue;
        };
        if v["kind"] == "dm" && v.get("reply").is_none() {
            let id = v["message_id"].as_str().expect("message_id").to_string();
            let text = v["text"].as_str().expect("text").to_string();
            out.entry(id).or_default().push(text);
        }
    }
    out
}

#[test]
fn every_message_stored_before_a_kill_is_printed_after_the_restart() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let common = [
        "--json",
        "--datasync",
        "--datasync-retransmission",
        "exponential:1000",
        "--redial-max-ms",
        "500",
    ];
    let mut a = NodeProcess::spawn("A", &[&["--listen", "127.0.0.1:0"], &common[..]].concat());
    let enode_a = a.enode(deadline);
    let peer_a = enode_a.to_string();
    let b_args: Vec<&str> = [&["--peer", peer_a.as_str()], &common[..]].concat();

    let mut b = NodeProcess::spawn_in("B", unique_temp_dir("delivery-B"), &b_args);
    let kb = key_of(&b.enode(deadline));
    b.wait_connected(deadline, &enode_a);
    let sent: Vec<String> = (0..MESSAGES).map(|i| format!("a to b {i}")).collect();
    let per_life = MESSAGES / KILLS;

    // xorshift64: the kill moments, reproducible.
    let mut x = SEED;
    let mut draw = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut transcripts = String::new();
    let mut injected_crashes = 0;
    for life in 0..KILLS {
        let lines: String = sent[life * per_life..(life + 1) * per_life]
            .iter()
            .map(|t| format!("/dm {kb} {t}\n"))
            .collect();
        a.send_text(&lines);
        if life.is_multiple_of(2) {
            // A SIGKILL at a random moment.
            std::thread::sleep(Duration::from_millis(draw(MAX_KILL_AFTER_MS)));
        } else {
            // The moment the old code lost messages: right after a commit, before the print.
            // This life was started with --inject-crash-after-commits; wait for it to die.
            let waited = Instant::now() + Duration::from_secs(CRASH_WAIT_SECS);
            if b.wait_exit(waited.min(deadline)).is_some() {
                injected_crashes += 1;
            }
        }
        transcripts.push_str(&b.transcript());
        transcripts.push('\n');
        let dir = b.stop_keep_data(); // SIGKILL (if still running)
        let crash_after = (1 + draw(MAX_CRASH_AFTER_COMMITS)).to_string();
        let mut args = b_args.clone();
        if life.is_multiple_of(2) && life + 1 < KILLS {
            args.extend(["--inject-crash-after-commits", crash_after.as_str()]);
        }
        b = NodeProcess::spawn_in("B", dir, &args);
        b.enode(deadline);
    }
    assert!(
        injected_crashes > 0,
        "no life of B crashed between a commit and its print\n{transcripts}"
    );

    // Last life: wait until B's store holds every message.
    loop {
        b.send_line(&format!("/history {}", key_of(&enode_a)));
        b.send_line("/whoami");
        let mut stored = BTreeSet::new();
        loop {
            let line = b.wait_stdout(deadline, |l| l.contains("\"reply\""));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["reply"] == "whoami" {
                break;
            }
            stored.insert(v["text"].as_str().unwrap().to_string());
        }
        if stored.len() == MESSAGES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B stored {} of {MESSAGES}\n{}",
            stored.len(),
            b.transcript()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Let a last drain's lines arrive.
    std::thread::sleep(Duration::from_secs(1));
    transcripts.push_str(&b.transcript());

    let by_id = printed(&transcripts);
    let mut texts = BTreeSet::new();
    let mut repeats = 0;
    for (id, printed_texts) in &by_id {
        assert!(
            printed_texts.iter().all(|t| *t == printed_texts[0]),
            "{id} printed with different texts: {printed_texts:?}"
        );
        assert!(
            texts.insert(printed_texts[0].clone()),
            "{:?} printed under two ids",
            printed_texts[0]
        );
        repeats += printed_texts.len() - 1;
    }
    let want: BTreeSet<String> = sent.iter().cloned().collect();
    let never_printed: Vec<_> = want.difference(&texts).collect();
    assert!(
        never_printed.is_empty(),
        "{} of {MESSAGES} messages were stored by B but never printed in any of its {} lives: {never_printed:?}",
        never_printed.len(),
        KILLS + 1
    );
    assert_eq!(texts, want, "B printed exactly the messages A sent");
    eprintln!(
        "B printed all {MESSAGES} messages over {} lives; {repeats} line(s) repeated after a kill",
        KILLS + 1
    );
}
