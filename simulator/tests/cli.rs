//! `hush sim` end to end with the flood host (independent of the real node).

use clap::Parser;
use hush_sim::cli::{run, HostKind, SimArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

#[test]
fn flags_parse_and_summary_json_is_written() {
    let dir = std::env::temp_dir().join(format!("hush-sim-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("nested");
    let cli = Cli::parse_from([
        "sim",
        "--seed",
        "9",
        "--nodes",
        "12",
        "--host",
        "flood",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(cli.sim.seed, 9);
    assert_eq!(cli.sim.nodes, Some(12));
    assert_eq!(cli.sim.host, HostKind::Flood);
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn defaults_and_scenario_file() {
    let cli = Cli::parse_from(["sim"]);
    assert_eq!(cli.sim.seed, 1);
    assert_eq!(cli.sim.host, HostKind::Node);
    assert_eq!(cli.sim, SimArgs::default());
    assert_eq!(
        cli.sim.load_scenario().unwrap(),
        hush_sim::Scenario::default()
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/default.toml");
    let cli = Cli::parse_from(["sim", "--scenario", path, "--nodes", "10"]);
    let s = cli.sim.load_scenario().unwrap();
    assert_eq!(
        s,
        hush_sim::Scenario {
            nodes: 10,
            ..hush_sim::Scenario::default()
        }
    );
}
