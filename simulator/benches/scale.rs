//! Scale benchmark (issue 7): N nodes, degree 8, one public chat at 1 message/s for 10 simulated
//! minutes, real crypto (the real `hush_core::node::Node`).
//!
//! Prints, per size: nodes, events, wall time, events/s, peak memory (VmHWM of a child process
//! that runs only that size), host time by kind, and beside it the baseline of the same run's
//! simulator alone (the flood test host over the same engine, topology and traffic), so the
//! ratio says how much of the cost is the node.
//!
//! `HUSH_SCALE_BASELINE=0` skips the flood-host baseline run (it also counts in the peak RSS,
//! since it runs first in the same child process).
//!
//! Sizes: `HUSH_SCALE_NODES` (comma-separated, default `1000,10000`); simulated minutes:
//! `HUSH_SCALE_MINUTES` (default 10). Run:
//!   cargo bench -p hush-sim --bench scale
//!   HUSH_SCALE_NODES=1000 HUSH_SCALE_MINUTES=1 cargo bench -p hush-sim --bench scale

use hush_core::node::{Command, Node};
use hush_core::rng::seed_from_u64;
use hush_core::Time;
use hush_sim::fake::{FloodConfig, FloodHost};
use hush_sim::run::{node_config, run_scenario_full, spawn_config, RunOutput, Spawn};
use hush_sim::scenario::{PublicChatSpec, Role, Scenario, Schedule};
use std::time::Instant;

/// The same allocator as the `hush` binary (drivers/src/main.rs), whose `hush sim` this measures.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn scenario(nodes: usize, minutes: u64) -> Scenario {
    Scenario {
        nodes,
        degree: 8,
        connect_window_ms: 5_000,
        duration_ms: Some(minutes * 60_000 + 15_000),
        max_events: u64::MAX,
        traffic: hush_sim::scenario::TrafficSpec {
            public: vec![PublicChatSpec {
                chat: "status".into(),
                members: Default::default(),
                schedule: Schedule {
                    messages: u32::try_from(minutes * 60).unwrap_or(u32::MAX),
                    first_at_ms: 10_000,
                    interval_ms: 1_000,
                    poisson: false,
                },
            }],
            ..Default::default()
        },
        ..Scenario::default()
    }
}

/// The real node for the bench: the workload is one public chat, so the 1:1 layer's
/// contact-code publication (one envelope per node flooded to every node: n² receptions) is off.
fn spawn_bench_node(spawn: Spawn) -> Result<Node, hush_core::node::NodeError> {
    let mut config = spawn_config(&spawn);
    config.conversations.publish_contact_code = false;
    Node::new(config, spawn.secret_key, spawn.seed, spawn.now)
}

/// CPU time (user + system) of this process so far, seconds: on a shared box the wall time
/// includes waiting for a core, the CPU time does not.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn report(label: &str, out: &RunOutput, wall: f64) {
    let s = &out.summary;
    let t = &s.host_times;
    println!(
        "{label:>6} nodes={} events={} wall={wall:.1}s events/s={:.0} delivered={:.4} p50={:?}ms \
         host: command={:.1}s bytes={:.1}s connection={:.1}s timer={:.1}s engine+rest={:.1}s",
        s.nodes,
        s.events,
        s.events as f64 / wall,
        s.delivery_ratio,
        s.latency_ms_p50,
        t.command_ns as f64 / 1e9,
        t.bytes_ns as f64 / 1e9,
        t.connection_ns as f64 / 1e9,
        t.timeout_ns as f64 / 1e9,
        wall - t.total_ns() as f64 / 1e9,
    );
}

fn child(nodes: usize, minutes: u64) {
    let sc = scenario(nodes, minutes);
    // One join in isolation: PBKDF2 of the chat key (65,356 iterations) dominates it.
    let mut node = Node::new(
        node_config(0, Role::Full),
        [7; 32],
        seed_from_u64(1),
        Time(0),
    )
    .unwrap();
    let t = Instant::now();
    node.handle_command(
        Time(0),
        Command::JoinPublicChat {
            name: "status".into(),
        },
    )
    .unwrap();
    let join = t.elapsed().as_secs_f64();

    // The flood-host baseline (simulator alone); `HUSH_SCALE_BASELINE=0` skips it.
    let baseline = std::env::var("HUSH_SCALE_BASELINE").map_or(true, |v| v != "0");
    let flood = baseline.then(|| {
        let t = Instant::now();
        let flood = run_scenario_full(
            &sc,
            1,
            |s| FloodHost::new(FloodConfig::default(), s.secret_key, s.now),
            &mut |_| {},
        )
        .unwrap();
        let flood_wall = t.elapsed().as_secs_f64();
        report("flood", &flood, flood_wall);
        (flood.summary.events as f64, flood_wall)
    });

    let t = Instant::now();
    let cpu0 = cpu_secs();
    let real = run_scenario_full(&sc, 1, spawn_bench_node, &mut |_| {}).unwrap();
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    report("node", &real, wall);
    let (flood_eps, ratio) = match flood {
        Some((events, flood_wall)) => (
            format!("{:.0}", events / flood_wall),
            format!(
                "{:.1}",
                (wall / real.summary.events.max(1) as f64) / (flood_wall / events.max(1.0))
            ),
        ),
        None => ("-".to_string(), "-".to_string()),
    };
    println!(
        "RESULT nodes={nodes} minutes={minutes} events={} wall_s={wall:.1} cpu_s={cpu:.1} events_per_s={:.0} \
         peak_rss_mib={:.0} delivery={:.4} p50_ms={:?} baseline_flood_events_per_s={flood_eps} \
         ratio_node_vs_flood_us_per_event={ratio} join_ms={:.1} joins_total_s={:.1} trace={}",
        real.summary.events,
        real.summary.events as f64 / wall,
        peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
        real.summary.delivery_ratio,
        real.summary.latency_ms_p50,
        join * 1e3,
        join * nodes as f64,
        real.summary.trace_hash,
    );
}

fn main() {
    let minutes: u64 = std::env::var("HUSH_SCALE_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    if let Some(n) = std::env::var("HUSH_SCALE_CHILD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        child(n, minutes);
        return;
    }
    // cargo bench passes `--bench`; ignore arguments.
    let sizes = std::env::var("HUSH_SCALE_NODES").unwrap_or_else(|_| "1000,10000".into());
    println!("scale benchmark: degree 8, 1 msg/s for {minutes} simulated min, real crypto (loaded shared 2-core box)");
    for n in sizes
        .split(',')
        .filter_map(|v| v.trim().parse::<usize>().ok())
    {
        let exe = std::env::current_exe().expect("own path");
        let status = std::process::Command::new(exe)
            .env("HUSH_SCALE_CHILD", n.to_string())
            .env("HUSH_SCALE_MINUTES", minutes.to_string())
            .status()
            .expect("spawn child");
        if !status.success() {
            println!("nodes={n}: child failed ({status})");
        }
    }
}
