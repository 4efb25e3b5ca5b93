//! `hush sim` end to end with the flood host (independent of the real node).

use clap::Parser;
use hush_sim::cli::{run, with_param, HostKind, SimArgs, SimCommand};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hush-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn flags_parse_and_every_output_is_written() {
    let dir = tmp("cli");
    let out = dir.join("nested");
    let cli = Cli::parse_from([
        "sim",
        "--seed",
        "9",
        "--nodes",
        "12",
        "--host",
        "flood",
        "--check-determinism",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(cli.sim.seed, Some(9));
    assert_eq!(cli.sim.nodes, Some(12));
    assert_eq!(cli.sim.host, HostKind::Flood);
    assert!(cli.sim.check_determinism);
    assert_eq!(
        cli.sim.reproduce_command(),
        "hush sim --seed 9 --nodes 12 --host flood"
    );
    run(cli.sim).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["seed"], 9);
    assert_eq!(json["nodes"], 12);
    assert_eq!(json["delivery_ratio"], 1.0);
    assert_eq!(json["trace_hash"].as_str().unwrap().len(), 64);
    let csv = std::fs::read_to_string(out.join("messages.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,author,chat,sent_ms,expected,received"));
    assert_eq!(lines.len(), 1 + 10, "one row per message");
    assert!(lines[1].contains(",11,11,1.0000,"), "{}", lines[1]);
    let nodes = std::fs::read_to_string(out.join("nodes.csv")).unwrap();
    assert_eq!(nodes.lines().count(), 1 + 12);
    for svg in [
        "latency_cdf.svg",
        "bandwidth_per_node.svg",
        "delivery_over_time.svg",
    ] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg"), "{svg}");
        assert!(text.contains("<polyline"), "{svg} has a curve");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn defaults_bundled_names_and_scenario_file() {
    let cli = Cli::parse_from(["sim"]);
    assert_eq!(cli.sim.seed, None);
    assert_eq!(cli.sim.host, HostKind::Node);
    assert_eq!(cli.sim, SimArgs::default());
    let s = cli.sim.load_scenario().unwrap();
    assert_eq!(s, hush_sim::Scenario::default());
    assert_eq!(cli.sim.effective_seed(&s), 1);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/default.toml");
    let cli = Cli::parse_from(["sim", "--scenario", path, "--nodes", "10"]);
    let s = cli.sim.load_scenario().unwrap();
    assert_eq!(
        s,
        hush_sim::Scenario {
            nodes: 10,
            ..hush_sim::Scenario::default()
        }
    );
    for name in hush_sim::cli::BUNDLED.iter().map(|(n, _)| *n) {
        let cli = Cli::parse_from(["sim", "--scenario", name]);
        // Every bundled scenario loads as the network simulator's or as the MVDS runner's.
        if cli.sim.load_mvds_offline().unwrap().is_none() {
            cli.sim.load_scenario().unwrap();
        }
    }
    let cli = Cli::parse_from(["sim", "--scenario", "no-such-scenario"]);
    let e = format!("{:#}", cli.sim.load_scenario().unwrap_err());
    assert!(e.contains("bundled scenarios: default"), "{e}");
}

#[test]
fn set_overrides_dotted_paths() {
    let cli = Cli::parse_from([
        "sim",
        "--set",
        "link.loss=0.05",
        "--set",
        "degree=6",
        "--set",
        "chat=\"x\"",
    ]);
    let s = cli.sim.load_scenario().unwrap();
    assert_eq!(s.link.loss, 0.05);
    assert_eq!(s.degree, 6);
    assert_eq!(s.chat, "x");
    let base = hush_sim::cli::BUNDLED[2].1;
    let base = hush_sim::Scenario::from_toml_str(base).unwrap();
    let s = with_param(&base, "partitions.0.heal_ms", "50000").unwrap();
    assert_eq!(s.partitions[0].heal_ms, Some(50_000));
    assert!(with_param(&base, "partitions.3.heal_ms", "1").is_err());
    assert!(with_param(&base, "link.loss", "2.0").is_err());
    assert!(with_param(&base, "nosuch", "1").is_err());
}

#[test]
fn sweep_writes_csv_and_plots() {
    let dir = tmp("sweep");
    let cli = Cli::parse_from([
        "sim",
        "--host",
        "flood",
        "--nodes",
        "10",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
        "sweep",
        "link.loss=0,0.2",
    ]);
    assert_eq!(
        cli.sim.command,
        Some(SimCommand::Sweep {
            spec: "link.loss=0,0.2".into()
        })
    );
    run(cli.sim).unwrap();
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("link.loss,delivery_ratio,latency_ms_p50"));
    assert_eq!(lines.len(), 3);
    let p50 = |l: &str| l.split(',').nth(2).unwrap().parse::<f64>().unwrap();
    // Loss only delays (retransmissions): the median latency grows.
    assert!(p50(lines[2]) > p50(lines[1]), "{csv}");
    assert!(dir.join("sweep_delivery_ratio.svg").exists());
    assert!(dir.join("sweep_latency_ms_p50.svg").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mvds_offline_runs_the_published_case_and_writes_its_summary() {
    let dir = std::env::temp_dir().join(format!("hush-mvds-offline-{}", std::process::id()));
    let cli = Cli::parse_from([
        "sim",
        "--scenario",
        "mvds-offline",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let loaded = cli
        .sim
        .load_mvds_offline()
        .unwrap()
        .expect("bundled mvds-offline is the MVDS kind");
    assert_eq!(
        (loaded.nodes, loaded.communicating, loaded.offline_pct),
        (3, 2, 90)
    );
    run(cli.sim).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["expected_deliveries"], 2 * 10 * 2);
    assert_eq!(summary["duplicate_deliveries"], 0);
    assert!(
        summary["delivery_ratio"].as_f64().unwrap() > 0.5,
        "{summary}"
    );
    assert!(
        summary["bandwidth_multiplier"].as_f64().unwrap() > 1.0,
        "{summary}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_to_one_mvds_churn_reports_delivery_per_kind() {
    let dir = std::env::temp_dir().join(format!("hush-dm-churn-{}", std::process::id()));
    let cli = Cli::parse_from([
        "sim",
        "--scenario",
        "one-to-one-mvds-churn",
        "--set",
        "duration_ms=150000",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    run(cli.sim).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for kind in ["public", "dm", "group"] {
        let r = json["by_kind"][kind]["delivery_ratio"].as_f64();
        assert!(
            r.is_some_and(|r| (0.0..=1.0).contains(&r)),
            "{kind}: {json}"
        );
    }
    assert!(json["by_kind"]["dm"]["messages_sent"].as_u64().unwrap() > 0);
    assert_eq!(json["by_kind"]["dm"]["non_recipient_deliveries"], 0);
    assert_eq!(json["by_kind"]["group"]["duplicate_deliveries"], 0);
    let csv = std::fs::read_to_string(dir.join("messages.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",kind"), "{}", lines[0]);
    // 4 pairs × 10 + 1 group × 10 planned messages, no public ones.
    assert_eq!(lines.len(), 1 + 50);
    assert_eq!(lines.iter().filter(|l| l.ends_with(",dm")).count(), 40);
    assert_eq!(lines.iter().filter(|l| l.ends_with(",group")).count(), 10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_scenario_kind_is_an_error() {
    let path = std::env::temp_dir().join(format!("hush-kind-{}.toml", std::process::id()));
    std::fs::write(&path, "kind = \"bogus\"\n").unwrap();
    let cli = Cli::parse_from(["sim", "--scenario", path.to_str().unwrap(), "--no-progress"]);
    let e = format!("{:#}", run(cli.sim).unwrap_err());
    assert!(e.contains("unknown scenario kind"), "{e}");
    let _ = std::fs::remove_file(&path);
}
