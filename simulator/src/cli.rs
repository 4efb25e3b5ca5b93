//! The `hush sim` subcommand.
//!
//! Contract: `drivers/src/main.rs` flattens [`SimArgs`] into its `sim` subcommand and calls
//! [`run`]. `run` prints the seed first, runs the scenario (built-in default, or `--scenario
//! FILE`, then `--nodes` on top), prints a short summary and the command that reproduces the
//! run, and with `--out DIR` writes `DIR/summary.json`.

use crate::fake::{FloodConfig, FloodHost};
use crate::metrics::Summary;
use crate::run::{run_scenario, run_scenario_with};
use crate::scenario::Scenario;
use anyhow::Context as _;
use std::path::PathBuf;

/// Which host implementation to simulate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKind {
    /// The real hush node (`hush_core::node::Node`).
    #[default]
    Node,
    /// The toy flooding test host (exercises the simulator alone).
    Flood,
}

/// Arguments of `hush sim`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct SimArgs {
    /// Master seed: every key, link, dial time and message author derives from it.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override the scenario's node count.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Directory for outputs (created if missing); writes summary.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Scenario TOML file (missing fields take the built-in defaults).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Host implementation to run.
    #[arg(long, value_enum, default_value_t = HostKind::Node)]
    pub host: HostKind,
}

impl Default for SimArgs {
    /// The same values as an empty command line.
    fn default() -> Self {
        SimArgs {
            seed: 1,
            nodes: None,
            out: None,
            scenario: None,
            host: HostKind::Node,
        }
    }
}

impl SimArgs {
    /// The command line that reproduces this run.
    pub fn reproduce_command(&self) -> String {
        let mut cmd = format!("hush sim --seed {}", self.seed);
        if let Some(path) = &self.scenario {
            cmd.push_str(&format!(" --scenario {}", path.display()));
        }
        if let Some(n) = self.nodes {
            cmd.push_str(&format!(" --nodes {n}"));
        }
        if self.host != HostKind::Node {
            cmd.push_str(" --host flood");
        }
        cmd
    }

    /// The scenario these arguments select.
    pub fn load_scenario(&self) -> anyhow::Result<Scenario> {
        let mut scenario = match &self.scenario {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Scenario::from_toml_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => Scenario::default(),
        };
        if let Some(n) = self.nodes {
            scenario.nodes = n;
        }
        scenario.validate()?;
        Ok(scenario)
    }
}

/// Runs `hush sim`.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    println!("hush sim: seed {}", args.seed);
    let scenario = args.load_scenario()?;
    println!(
        "scenario: {} nodes, degree {}, latency {}-{} ms, {} messages, {} ms",
        scenario.nodes,
        scenario.degree,
        scenario.latency_min_ms,
        scenario.latency_max_ms,
        scenario.messages,
        scenario.end_ms()
    );
    let summary = match args.host {
        HostKind::Node => run_scenario(&scenario, args.seed),
        HostKind::Flood => run_scenario_with(&scenario, args.seed, |_, secret_key, _, now| {
            FloodHost::new(FloodConfig::default(), secret_key, now)
        }),
    }
    .with_context(|| format!("reproduce with: {}", args.reproduce_command()))?;
    print!("{}", human_summary(&summary));
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("summary.json");
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("reproduce: {}", args.reproduce_command());
    Ok(())
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v} ms"))
}

/// A few lines for the terminal.
pub fn human_summary(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "delivered {}/{} ({:.2}%), duplicates {}, messages sent {}/{}\n",
        s.deliveries,
        s.deliveries_expected,
        s.delivery_ratio * 100.0,
        s.duplicate_deliveries,
        s.messages_sent,
        s.messages_requested
    ));
    out.push_str(&format!(
        "latency p50 {}, p99 {}, max {}\n",
        ms(s.latency_ms_p50),
        ms(s.latency_ms_p99),
        ms(s.latency_ms_max)
    ));
    out.push_str(&format!(
        "peers connected {}, bytes sent {}, events {}, simulated {} ms in {} ms wall\n",
        s.peers_connected, s.bytes_sent_total, s.events, s.sim_duration_ms, s.wall_ms
    ));
    if s.messages_sent != s.messages_requested {
        out.push_str("warning: some send commands produced no MessageSent\n");
    }
    if s.hit_event_cap {
        out.push_str("warning: stopped at the event cap (liveness failure)\n");
    }
    out.push_str(&format!("trace {}\n", s.trace_hash));
    out
}
