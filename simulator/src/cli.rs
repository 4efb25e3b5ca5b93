//! The `hush sim` subcommand.
//!
//! Contract: `drivers/src/main.rs` flattens [`SimArgs`] into its `sim` subcommand and calls
//! [`run`]. `run` prints the seed first, loads the scenario (built-in default, a bundled name
//! or a TOML file given to `--scenario`, then each `--set PARAM=VALUE`, then `--nodes`), runs it
//! with a progress bar on stderr, prints the summary table and the command that reproduces the
//! run, and with `--out DIR` writes the files of [`crate::report::write_outputs`].
//! `--check-determinism` runs the scenario a second time and fails unless the trace hash and
//! every simulated figure agree. `hush sim sweep PARAM=v1,v2,..` runs once per value and writes
//! `sweep.csv` and one plot per metric ([`crate::report::write_sweep`]).
//!
//! Seed precedence: `--seed`, else the scenario's `seed`, else 1.

use crate::fake::{FloodConfig, FloodHost};
use crate::metrics::Summary;
use crate::report::{summary_table, sweep_metrics, write_outputs, write_sweep};
use crate::run::{run_scenario_full, spawn_node, Progress, RunOutput};
use crate::scenario::Scenario;
use crate::scenarios::mvds_offline::{run_mvds_offline, MvdsOfflineScenario};
use anyhow::{bail, Context as _};
use std::path::PathBuf;

pub mod progress;
pub use progress::ProgressReport;

/// Scenarios shipped with hush (`scenarios/*.toml` at the repository root), by name.
pub const BUNDLED: &[(&str, &str)] = &[
    ("default", include_str!("../../scenarios/default.toml")),
    (
        "whisper-scalability",
        include_str!("../../scenarios/whisper-scalability.toml"),
    ),
    (
        "partition-heal",
        include_str!("../../scenarios/partition-heal.toml"),
    ),
    (
        "mvds-offline",
        include_str!("../../scenarios/mvds-offline.toml"),
    ),
    (
        "mailserver-offline",
        include_str!("../../scenarios/mailserver-offline.toml"),
    ),
    (
        "one-to-one-mvds-churn",
        include_str!("../../scenarios/one-to-one-mvds-churn.toml"),
    ),
];

/// The bundled scenarios' names, comma-separated, in [`BUNDLED`] order.
pub fn bundled_names() -> String {
    BUNDLED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--scenario`'s help, listing every bundled scenario (so the list cannot drift from
/// [`BUNDLED`]).
pub fn scenario_help() -> String {
    format!(
        "Scenario: a bundled name ({}) or a TOML file (docs/scenarios.md; missing optional \
         fields take the built-in defaults)",
        bundled_names()
    )
}

/// Top-level key that marks a scenario file for another runner than the network simulator.
pub const MVDS_OFFLINE_KIND_KEY: &str = "kind";
/// The MVDS-only runner ([`crate::scenarios::mvds_offline`]).
pub const MVDS_OFFLINE_KIND: &str = "mvds-offline";

/// The seed when neither the command line nor the scenario gives one.
pub const DEFAULT_SEED: u64 = 1;

/// Which host implementation to simulate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKind {
    /// The real hush node (`hush_core::node::Node`).
    #[default]
    Node,
    /// The toy flooding test host (exercises the simulator alone).
    Flood,
}

/// Subcommands of `hush sim`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum SimCommand {
    /// Run the scenario once per value of one parameter and plot the metrics against it.
    Sweep {
        /// `PARAM=v1,v2,..`; PARAM is a dotted scenario path, e.g. `nodes`, `link.loss`,
        /// `privacy.spy_fraction`, `partitions.0.heal_ms`.
        spec: String,
    },
}

/// Arguments of `hush sim`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct SimArgs {
    /// Master seed: every key, link, dial time, fault and message author derives from it
    /// (default: the scenario's `seed`, else 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the scenario's node count.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Directory for outputs (created if missing): summary.json, messages.csv, nodes.csv and
    /// SVG plots (or sweep.csv and sweep plots).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Scenario: a bundled name or a TOML file (the help lists the bundled names, from
    /// [`BUNDLED`]).
    #[arg(long, help = scenario_help())]
    pub scenario: Option<PathBuf>,
    /// Set a scenario parameter, `PARAM=VALUE` (TOML value; dotted path); repeatable.
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    pub set: Vec<String>,
    /// Host implementation to run.
    #[arg(long, value_enum, default_value_t = HostKind::Node)]
    pub host: HostKind,
    /// Run twice and fail unless both runs agree (trace hash and every simulated figure).
    #[arg(long)]
    pub check_determinism: bool,
    /// No progress bar (on a terminal) or progress lines (otherwise) on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// Refuse scenarios whose estimated memory exceeds this many GB (10⁹ bytes) (default:
    /// 3/4 of physical memory; see `hush_sim::memory`).
    #[arg(long, value_name = "GB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_memory_gb: Option<u64>,
    /// A subcommand (`sweep`).
    #[command(subcommand)]
    pub command: Option<SimCommand>,
}

impl SimArgs {
    /// The command line that reproduces this run.
    pub fn reproduce_command(&self) -> String {
        let mut cmd = String::from("hush sim");
        if let Some(seed) = self.seed {
            cmd.push_str(&format!(" --seed {seed}"));
        }
        if let Some(path) = &self.scenario {
            cmd.push_str(&format!(" --scenario {}", path.display()));
        }
        for s in &self.set {
            cmd.push_str(&format!(" --set {s}"));
        }
        if let Some(n) = self.nodes {
            cmd.push_str(&format!(" --nodes {n}"));
        }
        if self.host != HostKind::Node {
            cmd.push_str(" --host flood");
        }
        if let Some(gb) = self.max_memory_gb {
            cmd.push_str(&format!(" --max-memory-gb {gb}"));
        }
        if let Some(SimCommand::Sweep { spec }) = &self.command {
            cmd.push_str(&format!(" sweep {spec}"));
        }
        cmd
    }

    /// The scenario these arguments select.
    /// The text of the scenario named by `--scenario` (bundled name or file), if any.
    fn scenario_text(&self) -> anyhow::Result<Option<String>> {
        let Some(path) = &self.scenario else {
            return Ok(None);
        };
        let name = path.to_string_lossy();
        if let Some((_, text)) = BUNDLED.iter().find(|(n, _)| *n == name) {
            return Ok(Some((*text).to_string()));
        }
        std::fs::read_to_string(path).map(Some).with_context(|| {
            format!(
                "reading {} (bundled scenarios: {})",
                path.display(),
                bundled_names()
            )
        })
    }

    /// An MVDS-only scenario (top-level `kind = "mvds-offline"`), with `--nodes` applied.
    pub fn load_mvds_offline(&self) -> anyhow::Result<Option<MvdsOfflineScenario>> {
        let Some(text) = self.scenario_text()? else {
            return Ok(None);
        };
        let mut table: toml::Table = match text.parse() {
            Ok(t) => t,
            // Not TOML at all: let the network-scenario parser report it.
            Err(_) => return Ok(None),
        };
        match table.remove(MVDS_OFFLINE_KIND_KEY) {
            Some(toml::Value::String(kind)) if kind == MVDS_OFFLINE_KIND => {}
            Some(other) => {
                bail!("unknown scenario kind {other}; the only kind is \"{MVDS_OFFLINE_KIND}\"")
            }
            None => return Ok(None),
        }
        let mut scenario: MvdsOfflineScenario = table
            .try_into()
            .context("parsing the mvds-offline scenario")?;
        if let Some(n) = self.nodes {
            scenario.nodes = n;
        }
        Ok(Some(scenario))
    }

    /// The network scenario: `--scenario` (bundled name or TOML file) or the default, with
    /// `--set` and `--nodes` applied.
    pub fn load_scenario(&self) -> anyhow::Result<Scenario> {
        let mut scenario = match self.scenario_text()? {
            Some(text) => Scenario::from_toml_str(&text).with_context(|| {
                format!(
                    "parsing {}",
                    self.scenario
                        .as_deref()
                        .unwrap_or(std::path::Path::new("?"))
                        .display()
                )
            })?,
            None => Scenario::default(),
        };
        for s in &self.set {
            let (param, value) = s
                .split_once('=')
                .with_context(|| format!("--set {s}: expected PARAM=VALUE"))?;
            scenario = with_param(&scenario, param, value)?;
        }
        if let Some(n) = self.nodes {
            scenario.nodes = n;
        }
        scenario.validate()?;
        crate::memory::check(&scenario, self.memory_limit_bytes())?;
        Ok(scenario)
    }

    /// The memory limit of a run: `--max-memory-gb`, else
    /// [`crate::memory::default_limit_bytes`].
    pub fn memory_limit_bytes(&self) -> u64 {
        self.max_memory_gb
            .map_or_else(crate::memory::default_limit_bytes, |gb| {
                gb.saturating_mul(1_000_000_000)
            })
    }

    /// The seed of this run.
    pub fn effective_seed(&self, scenario: &Scenario) -> u64 {
        self.seed.or(scenario.seed).unwrap_or(DEFAULT_SEED)
    }
}

/// Parses `text` as a TOML value (`8`, `0.1`, `true`, `[1, 2]`, `"x"`), else as a bare string.
fn toml_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// `scenario` with the dotted path `param` set to `value` (array elements by index).
pub fn with_param(scenario: &Scenario, param: &str, value: &str) -> anyhow::Result<Scenario> {
    let mut root = toml::Value::try_from(scenario)?;
    let mut cur = &mut root;
    let parts: Vec<&str> = param.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            toml::Value::Table(t) => {
                if last {
                    t.insert(part.to_string(), toml_value(value));
                    break;
                }
                t.entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx: usize = part
                    .parse()
                    .with_context(|| format!("{param}: `{part}` is not an array index"))?;
                let len = a.len();
                let slot = a
                    .get_mut(idx)
                    .with_context(|| format!("{param}: index {idx} past the {len} elements"))?;
                if last {
                    *slot = toml_value(value);
                    break;
                }
                slot
            }
            _ => bail!("{param}: `{part}` is inside a value that is not a table or array"),
        };
    }
    let text = toml::to_string(&root)?;
    Scenario::from_toml_str(&text).with_context(|| format!("setting {param} = {value}"))
}

fn simulate(
    args: &SimArgs,
    scenario: &Scenario,
    seed: u64,
    progress: bool,
) -> anyhow::Result<RunOutput> {
    use std::io::IsTerminal as _;
    let show = progress && !args.no_progress;
    let terminal = std::io::stderr().is_terminal();
    let bar = (show && terminal).then(|| {
        let bar = indicatif::ProgressBar::new(scenario.end_ms().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let wall_start = std::time::Instant::now();
    let mut report = ProgressReport::default();
    let mut on_progress = |p: Progress| {
        if !show {
            return;
        }
        let wall = wall_start.elapsed();
        match &bar {
            Some(b) => {
                b.set_position(p.simulated_ms);
                b.set_message(report.status(p, wall));
            }
            None => {
                if let Some(line) = report.line(p, wall) {
                    eprintln!("{line}");
                }
            }
        }
    };
    let out = match args.host {
        HostKind::Node => run_scenario_full(scenario, seed, spawn_node, &mut on_progress),
        HostKind::Flood => run_scenario_full(
            scenario,
            seed,
            |s| FloodHost::new(FloodConfig::default(), s.secret_key, s.now),
            &mut on_progress,
        ),
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out.with_context(|| format!("reproduce with: {}", args.reproduce_command()))
}

/// Runs `hush sim`.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    if let Some(mvds) = args.load_mvds_offline()? {
        return run_mvds_offline_cli(&args, &mvds);
    }
    let scenario = args.load_scenario()?;
    let seed = args.effective_seed(&scenario);
    println!("hush sim: seed {seed}");
    if !scenario.description.is_empty() {
        println!("{}", scenario.description);
    }
    println!(
        "scenario: {} nodes, {:?}, {:?}, {} ms",
        scenario.nodes,
        scenario.topology_spec(),
        scenario.latency_dist(),
        scenario.end_ms()
    );
    if let Some(SimCommand::Sweep { spec }) = &args.command {
        return sweep(&args, &scenario, seed, spec);
    }
    let out = simulate(&args, &scenario, seed, true)?;
    print!("{}", summary_table(&out.summary));
    if let Some(dir) = &args.out {
        for path in write_outputs(dir, &out)? {
            println!("wrote {}", path.display());
        }
    }
    if args.check_determinism {
        let again = simulate(&args, &scenario, seed, false)?;
        check_same(&out.summary, &again.summary)?;
        println!(
            "determinism: second run agrees (trace {})",
            again.summary.trace_hash
        );
    }
    println!("reproduce: {}", args.reproduce_command());
    Ok(())
}

/// Runs an MVDS-only scenario: prints its figures, writes `summary.json` to `--out`.
fn run_mvds_offline_cli(args: &SimArgs, scenario: &MvdsOfflineScenario) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or(DEFAULT_SEED);
    println!("hush sim: seed {seed}");
    println!(
        "mvds-offline: {} nodes ({} sending {} messages each), {}% offline ({:?}), {:?} back-off, {} ms",
        scenario.nodes,
        scenario.communicating,
        scenario.messages_per_node,
        scenario.offline_pct,
        scenario.offline_model,
        scenario.backoff,
        scenario.duration_ms
    );
    let summary = run_mvds_offline(scenario, seed)?;
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
    println!(
        "delivered {}/{} ({:.2}%), duplicates {}",
        summary.deliveries,
        summary.expected_deliveries,
        summary.delivery_ratio * 100.0,
        summary.duplicate_deliveries
    );
    println!(
        "latency p50 {}, p95 {}, max {}",
        ms(summary.latency_p50_ms),
        ms(summary.latency_p95_ms),
        ms(summary.latency_max_ms)
    );
    println!(
        "bandwidth multiplier {:.1} ({} bytes sent, {} ideal), sync records left {}",
        summary.bandwidth_multiplier,
        summary.bytes_sent,
        summary.ideal_bytes,
        summary.final_sync_states
    );
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("summary.json");
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if args.check_determinism {
        let again = run_mvds_offline(scenario, seed)?;
        if again != summary {
            bail!("determinism check failed: two mvds-offline runs differ");
        }
        println!("determinism: second run agrees");
    }
    Ok(())
}

/// Fails unless two runs agree on everything simulated.
pub fn check_same(a: &Summary, b: &Summary) -> anyhow::Result<()> {
    if a.trace_hash != b.trace_hash {
        bail!(
            "determinism check failed: trace {} then {}",
            a.trace_hash,
            b.trace_hash
        );
    }
    if a.deterministic_part() != b.deterministic_part() {
        bail!("determinism check failed: same trace but different summaries");
    }
    Ok(())
}

fn sweep(args: &SimArgs, base: &Scenario, seed: u64, spec: &str) -> anyhow::Result<()> {
    let (param, values) = spec
        .split_once('=')
        .with_context(|| format!("sweep {spec}: expected PARAM=v1,v2,.."))?;
    let values: Vec<&str> = values
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        bail!("sweep {spec}: no values");
    }
    let mut rows = Vec::new();
    for v in values {
        let scenario = with_param(base, param, v)?;
        crate::memory::check(&scenario, args.memory_limit_bytes())
            .with_context(|| format!("sweep {param} = {v}"))?;
        println!("{param} = {v}");
        let out = simulate(args, &scenario, seed, true)?;
        let metrics: Vec<String> = sweep_metrics(&out.summary)
            .iter()
            .map(|m| m.text())
            .collect();
        println!("  {}", metrics.join(", "));
        rows.push((v.to_string(), out.summary));
    }
    if let Some(dir) = &args.out {
        for path in write_sweep(dir, param, &rows)? {
            println!("wrote {}", path.display());
        }
    }
    println!("reproduce: {}", args.reproduce_command());
    Ok(())
}

/// A few lines for the terminal (kept for callers of the first version; see
/// [`summary_table`]).
pub fn human_summary(s: &Summary) -> String {
    summary_table(s)
}
