//! Issue 17 item 5: what `hush sim` prints and draws says what happened — no `0 / 0 = 1`, no
//! NaN, fault windows on plots, markers on sparse series, axis labels in words with units,
//! every bundled scenario in the help and the docs, impossible timelines refused by path.
//! (Progress lines for non-terminals: `hush_sim::cli::progress` unit tests.)

use clap::{CommandFactory, Parser};
use hush_sim::cli::{run, SimArgs, BUNDLED};
use hush_sim::fake::{FloodConfig, FloodHost};
use hush_sim::report::{summary_table, sweep_metrics, write_outputs, write_sweep};
use hush_sim::run::{run_scenario_full, RunOutput};
use hush_sim::scenario::Scenario;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hush-honest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn flood(s: &Scenario) -> RunOutput {
    run_scenario_full(
        s,
        1,
        |sp| FloodHost::new(FloodConfig::default(), sp.secret_key, sp.now),
        &mut |_| {},
    )
    .unwrap()
}

#[test]
fn help_lists_every_bundled_scenario() {
    let help = Cli::command().render_long_help().to_string();
    for (name, _) in BUNDLED {
        assert!(help.contains(name), "--help lacks {name}:\n{help}");
    }
}

#[test]
fn docs_list_every_bundled_scenario_and_say_which_fields_are_required() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md"),
    )
    .unwrap();
    for (name, _) in BUNDLED {
        assert!(docs.contains(&format!("`{name}`")), "docs lack {name}");
    }
    assert!(!docs.contains("Every field is optional"));
    assert!(docs.contains("mean_online_ms = 60000         # required"));
    // And the parser agrees: `[churn]` needs both fields.
    let err = Scenario::from_toml_str("[churn]\noffline_fraction = 0.3\n").unwrap_err();
    assert!(err.to_string().contains("mean_online_ms"), "{err}");
}

#[test]
fn impossible_timelines_are_refused_with_the_fields_path() {
    let cases = [
        (
            "[[partitions]]\nat_ms = 20000\nheal_ms = 10000\nfraction = 0.5\n",
            "partitions[0].heal_ms",
        ),
        (
            "[[partitions]]\nat_ms = 1000\nheal_ms = 2000\nfraction = 0.5\n\
             [[partitions]]\nat_ms = 9000\nheal_ms = 9000\nfraction = 0.5\n",
            "partitions[1].heal_ms",
        ),
        (
            "duration_ms = 10000\n[[offline]]\nat_ms = 10000\nduration_ms = 5\ncount = 1\n",
            "offline[0].at_ms",
        ),
        (
            "duration_ms = 10000\n[[crashes]]\nat_ms = 20000\nnodes = [1]\n",
            "crashes[0].at_ms",
        ),
        (
            "[[traffic.groups]]\ngroups = 1\nsize = 3\ncreate_at_ms = 5000\n\
             late_members = 1\nlate_at_ms = 1000\n",
            "traffic.groups[0].late_at_ms",
        ),
    ];
    for (text, path) in cases {
        let err = Scenario::from_toml_str(text).unwrap_err().to_string();
        assert!(err.starts_with(path), "{path}: {err}");
    }
    // A heal after the partition is fine.
    Scenario::from_toml_str("[[partitions]]\nat_ms = 10000\nheal_ms = 20000\nfraction = 0.5\n")
        .unwrap();
}

#[test]
fn a_kind_without_traffic_says_so_instead_of_a_ratio() {
    let s = Scenario {
        nodes: 6,
        messages: 0,
        ..Scenario::default()
    };
    let out = flood(&s);
    let table = summary_table(&out.summary);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("delivery ratio"))
        .unwrap();
    assert!(row.contains("n/a (no traffic of this kind"), "{row}");
    assert!(!row.contains("1.0000"), "{row}");
    assert!(!table.contains("NaN"), "{table}");
}

#[test]
fn sweep_metrics_are_never_nan_and_say_why_not() {
    let out = flood(&Scenario {
        nodes: 6,
        ..Scenario::default()
    });
    let metrics = sweep_metrics(&out.summary);
    let spy = metrics
        .iter()
        .find(|m| m.name == "first_spy_precision")
        .unwrap();
    assert_eq!(spy.value, None);
    assert_eq!(
        spy.text(),
        "first_spy_precision n/a (no spies: set privacy.spy_fraction)"
    );
    for m in &metrics {
        assert!(!m.text().contains("NaN"), "{}", m.text());
        assert!(m.value.is_none_or(f64::is_finite));
    }
}

#[test]
fn sparse_sweep_plots_have_markers_and_words_on_their_axes() {
    let dir = tmp("sweep");
    let rows: Vec<(String, hush_sim::Summary)> = [6usize, 8, 10]
        .iter()
        .map(|&n| {
            let out = flood(&Scenario {
                nodes: n,
                ..Scenario::default()
            });
            (n.to_string(), out.summary)
        })
        .collect();
    write_sweep(&dir, "link.loss", &rows).unwrap();
    let svg = std::fs::read_to_string(dir.join("sweep_delivery_ratio.svg")).unwrap();
    assert!(svg.matches("<circle").count() >= 3, "a marker per sample");
    assert!(
        svg.contains("delivery ratio (deliveries / expected)"),
        "y label in words"
    );
    assert!(
        svg.contains("link loss (0 to 1)"),
        "x label in words with its unit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plots_over_time_mark_partitions_churn_and_crashes() {
    let dir = tmp("windows");
    let s = Scenario::from_toml_str(
        "nodes = 8\n\
         [[partitions]]\nat_ms = 6000\nheal_ms = 12000\nfraction = 0.5\n\
         [churn]\noffline_fraction = 0.2\nmean_online_ms = 10000\nstart_ms = 3000\ncount = 2\n\
         [[crashes]]\nat_ms = 8000\nrestart_after_ms = 4000\nnodes = [1]\n",
    )
    .unwrap();
    let out = flood(&s);
    write_outputs(&dir, &out).unwrap();
    let svg = std::fs::read_to_string(dir.join("delivery_over_time.svg")).unwrap();
    for label in ["partition 0", "churn (20 % offline)", "crash 0"] {
        assert!(svg.contains(label), "{label} not marked");
    }
    // The partition's band spans 6–12 s.
    assert_eq!(out.fault_windows[0].from_ms, 6_000);
    assert_eq!(out.fault_windows[0].to_ms, 12_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn partition_heal_scenario_marks_its_partition() {
    let text = BUNDLED
        .iter()
        .find(|(n, _)| *n == "partition-heal")
        .unwrap()
        .1;
    let s = Scenario::from_toml_str(text).unwrap();
    let w = s.fault_windows();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].from_ms, w[0].to_ms), (15_000, 35_000));
}

#[test]
fn summary_json_has_the_duplicate_factor_per_kind() {
    let dir = tmp("json");
    let cli = Cli::parse_from([
        "sim",
        "--host",
        "flood",
        "--nodes",
        "8",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    run(cli.sim).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let d = &json["duplicate_factor"];
    for kind in ["public", "contact_code", "other"] {
        assert!(d[kind].is_object(), "{d}");
    }
    // Default overlay: 4-regular, so the theory is 2 to 4 copies per new envelope.
    assert_eq!(d["mean_degree"], 4.0);
    assert_eq!(d["theory_min"], 2.0);
    assert_eq!(d["theory_max"], 4.0);
    let _ = std::fs::remove_dir_all(&dir);
}
