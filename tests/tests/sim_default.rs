//! `hush sim` on the bundled default scenario, through the real binary: same seed → same
//! trace hash, another seed → another hash, and every message reaches every member.

use std::process::Command;

use hush_tests::{hush_bin, unique_temp_dir};
use serde_json::Value;

fn run_sim(seed: u64) -> Value {
    let out = unique_temp_dir(&format!("sim-{seed}"));
    let status = Command::new(hush_bin())
        .args(["sim", "--seed", &seed.to_string(), "--out"])
        .arg(&out)
        .output()
        .expect("run hush sim");
    assert!(
        status.status.success(),
        "hush sim failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    let _ = std::fs::remove_dir_all(&out);
    serde_json::from_str(&text).expect("summary.json is JSON")
}

#[test]
fn default_scenario_is_deterministic_and_delivers_everything() {
    let a = run_sim(7);
    let b = run_sim(7);
    let c = run_sim(8);
    for key in [
        "seed",
        "nodes",
        "messages_sent",
        "deliveries_expected",
        "deliveries",
        "delivery_ratio",
        "latency_ms_p50",
        "latency_ms_p99",
        "bytes_sent_total",
        "events",
        "trace_hash",
    ] {
        assert!(a.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(a["nodes"], 50);
    assert_eq!(a["messages_sent"], 10);
    assert_eq!(a["deliveries_expected"], 10 * 49);
    assert_eq!(a["delivery_ratio"], 1.0);
    assert_eq!(c["delivery_ratio"], 1.0);
    assert_eq!(a["trace_hash"], b["trace_hash"], "same seed, same trace");
    assert_eq!(a["events"], b["events"]);
    assert_ne!(
        a["trace_hash"], c["trace_hash"],
        "another seed, another trace"
    );
    // The chat's duplicate factor, on chat envelopes alone, within the 4-regular overlay's
    // bounds [d/2, d] (contact codes are counted apart).
    let d = &a["duplicate_factor"];
    assert_eq!(d["public"]["pooled"], 10 * 50, "{d}");
    let f = d["public"]["factor"].as_f64().expect("a chat factor");
    let (lo, hi) = (
        d["theory_min"].as_f64().unwrap(),
        d["theory_max"].as_f64().unwrap(),
    );
    assert_eq!((lo, hi), (2.0, 4.0));
    assert!(
        (lo..=hi).contains(&f),
        "chat duplicate factor {f} outside [{lo}, {hi}]"
    );
}
