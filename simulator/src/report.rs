//! Reports: the terminal table, `summary.json`, CSV files and SVG plots.
//!
//! Contract: [`write_outputs`] writes into an existing-or-created directory:
//! - `summary.json`: the [`Summary`];
//! - `messages.csv`: one row per message (id, author, chat, send time, expected and actual
//!   receivers, delivery ratio, mean and max latency, first spy, its guess, whether right,
//!   kind): every public message sent, then every planned 1:1 (`dm`) and group message (an
//!   empty `sent_ms` when it was skipped or refused; `chat` is `dm:<a>-<b>` or `group-<g>`;
//!   `id` is the Status message id once someone received it; no first-spy columns);
//! - `nodes.csv`: one row per node (bytes up and down at the p2p layer);
//! - `latency_cdf.svg`, `bandwidth_per_node.svg`, `delivery_over_time.svg`.
//!
//! [`write_sweep`] writes `sweep.csv` and one `sweep_<metric>.svg` per metric. Plots use
//! plotters' SVG backend only (no fonts or system libraries needed), human axis labels with
//! units, point markers on sparse series, and shaded fault windows on plots over time
//! ([`plot`]).
//!
//! Nothing printed is NaN or a ratio of nothing: a figure that does not exist says `n/a` and
//! why (no spies, nothing pooled), and a kind of traffic without messages says so.

use crate::metrics::{Summary, DELIVERY_BUCKET_MS};
use crate::model::comparison_table;
use crate::run::RunOutput;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub mod plot;
pub use plot::{line_plot, thin, Band, MAX_PLOT_POINTS, SPARSE_POINTS};

fn opt(v: Option<u64>, unit: &str) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v} {unit}"))
}

/// A delivery ratio, or what there was instead when nothing was expected.
fn ratio_text(ratio: f64, deliveries: u64, expected: u64, sent: u64) -> String {
    if expected > 0 {
        return format!("{ratio:.4} ({deliveries} / {expected})");
    }
    if sent == 0 {
        "n/a (no traffic of this kind: no message sent)".into()
    } else {
        format!("n/a ({sent} sent, but no other member to receive them)")
    }
}

fn factor_text(k: &crate::metrics::KindFactor) -> String {
    k.factor.map_or_else(|| "n/a".into(), |f| format!("{f:.2}"))
}

/// The duplicate factor per kind beside the overlay's bounds.
pub fn duplicate_factor_text(d: &crate::metrics::DuplicateFactors) -> String {
    let none = [&d.public, &d.contact_code, &d.other]
        .iter()
        .any(|k| k.factor.is_none());
    format!(
        "{} / {} / {} (overlay mean degree {:.1}: theory {:.2} to {:.2}{})",
        factor_text(&d.public),
        factor_text(&d.contact_code),
        factor_text(&d.other),
        d.mean_degree,
        d.theory_min,
        d.theory_max,
        if none {
            "; n/a = none of that kind"
        } else {
            ""
        }
    )
}

/// The summary as an aligned table for the terminal.
pub fn summary_table(s: &Summary) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("seed", s.seed.to_string()),
        ("nodes / links", format!("{} / {}", s.nodes, s.links)),
        ("topology", s.topology.clone()),
        ("roles", format!("{:?}", s.roles)),
        (
            "messages sent / planned",
            format!(
                "{} / {} ({} skipped: author offline)",
                s.messages_sent, s.messages_requested, s.messages_skipped_offline
            ),
        ),
        (
            "delivery ratio",
            ratio_text(
                s.delivery_ratio,
                s.deliveries,
                s.deliveries_expected,
                s.messages_sent,
            ),
        ),
        (
            "latency p50 / p90 / p99 / max",
            format!(
                "{} / {} / {} / {}",
                opt(s.latency_ms_p50, "ms"),
                opt(s.latency_ms_p90, "ms"),
                opt(s.latency_ms_p99, "ms"),
                opt(s.latency_ms_max, "ms")
            ),
        ),
        (
            "duplicates / after restart",
            format!(
                "{} / {}",
                s.duplicate_deliveries, s.redeliveries_after_restart
            ),
        ),
        (
            "bytes per node up p50 / max",
            format!(
                "{} / {}",
                opt(s.node_bytes_up_p50, "B"),
                opt(s.node_bytes_up_max, "B")
            ),
        ),
        (
            "bytes per node down p50 / max",
            format!(
                "{} / {}",
                opt(s.node_bytes_down_p50, "B"),
                opt(s.node_bytes_down_max, "B")
            ),
        ),
        (
            "wire bytes (retransmits, dups)",
            format!(
                "{} ({}, {})",
                s.wire_bytes, s.retransmits, s.duplicated_chunks
            ),
        ),
        (
            "envelopes received / new",
            format!(
                "{} / {} (amplification {})",
                s.envelopes.envelopes_received,
                s.envelopes.envelopes_pooled,
                s.amplification
                    .map_or("n/a (no envelope pooled)".into(), |a| format!("{a:.2}"))
            ),
        ),
        (
            "duplicate factor public / codes / other",
            duplicate_factor_text(&s.duplicate_factor),
        ),
        (
            "peers connected / disconnected",
            format!(
                "{} / {} (links cut {}, restarts {})",
                s.peers_connected, s.peers_disconnected, s.links_cut, s.restarts
            ),
        ),
        (
            "host time: command / bytes / conn / timer",
            format!(
                "{:.0} / {:.0} / {:.0} / {:.0} ms",
                s.host_times.command_ns as f64 / 1e6,
                s.host_times.bytes_ns as f64 / 1e6,
                s.host_times.connection_ns as f64 / 1e6,
                s.host_times.timeout_ns as f64 / 1e6
            ),
        ),
    ];
    for (kind, k) in s
        .by_kind
        .iter()
        .filter(|(kind, _)| kind.as_str() != "public")
    {
        rows.push((
            match kind.as_str() {
                "dm" => "1:1 delivery ratio / latency",
                "group" => "group delivery ratio / latency",
                _ => "other delivery ratio / latency",
            },
            if k.deliveries_expected == 0 {
                ratio_text(k.delivery_ratio, k.deliveries, 0, k.messages_sent)
            } else {
                format!(
                    "{:.4} ({} / {}); p50 {} p99 {} max {}",
                    k.delivery_ratio,
                    k.deliveries,
                    k.deliveries_expected,
                    opt(k.latency_ms_p50, "ms"),
                    opt(k.latency_ms_p99, "ms"),
                    opt(k.latency_ms_max, "ms")
                )
            },
        ));
        rows.push((
            match kind.as_str() {
                "dm" => "1:1 sent / planned, dups, non-recipient",
                "group" => "group sent / planned, dups, non-recipient",
                _ => "other sent / planned, dups, non-recipient",
            },
            format!(
                "{} / {} (skipped {} offline, {} no group, {} refused); dups {}, after restart {}, \
                 at non-recipients {}, unknown {}",
                k.messages_sent,
                k.messages_planned,
                k.messages_skipped_offline,
                k.messages_skipped_no_group,
                k.messages_refused,
                k.duplicate_deliveries,
                k.redeliveries_after_restart,
                k.non_recipient_deliveries.unwrap_or(0),
                k.unknown_deliveries
            ),
        ));
    }
    if s.history_requests_sent + s.history_request_retries + s.archived_envelopes > 0 {
        rows.push((
            "deliveries live / history",
            format!(
                "{} / {} (ratio live only {:.4})",
                s.deliveries_live, s.deliveries_history, s.delivery_ratio_live
            ),
        ));
        rows.push((
            "history requests sent / done",
            format!(
                "{} / {} (refused {}, retries {}, given up {}; archived {}, restored {})",
                s.history_requests_sent,
                s.history_pages_completed,
                s.history_requests_refused,
                s.history_request_retries,
                s.history_requests_abandoned,
                s.archived_envelopes,
                s.archive_restored
            ),
        ));
    }
    if let Some(p) = &s.privacy {
        rows.push((
            "first-spy precision",
            format!(
                "{} ({} / {} guessed, {} spies; random guess {:.4})",
                p.precision
                    .map_or("n/a (no message reached a spy)".into(), |v| format!(
                        "{v:.3}"
                    )),
                p.correct_guesses,
                p.messages_seen_by_spies,
                p.spies,
                p.random_guess_baseline
            ),
        ));
    }
    rows.push((
        "events / simulated / wall",
        format!("{} / {} ms / {} ms", s.events, s.sim_duration_ms, s.wall_ms),
    ));
    rows.push(("trace", s.trace_hash.clone()));
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    if s.messages_sent + s.messages_skipped_offline != s.messages_requested {
        out.push_str("warning: some send commands produced no MessageSent\n");
    }
    if s.hit_event_cap {
        out.push_str("warning: stopped at the event cap (liveness failure)\n");
    }
    if let Some(m) = &s.model {
        out.push_str(&comparison_table(m));
    }
    out
}

/// Writes every output of one run into `dir`; returns the paths written.
pub fn write_outputs(dir: &Path, out: &RunOutput) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let s = &out.summary;
    let write = |name: &str, text: String, written: &mut Vec<PathBuf>| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    write(
        "summary.json",
        serde_json::to_string_pretty(s)? + "\n",
        &mut written,
    )?;

    let mut csv = String::from(
        "id,author,chat,sent_ms,expected,received,delivery_ratio,latency_mean_ms,latency_max_ms,first_spy,first_spy_guess,first_spy_correct,kind\n",
    );
    for m in &out.messages {
        // No receiver expected: no ratio (an empty field, not 0 / 0 = 1).
        let ratio = if m.expected == 0 {
            String::new()
        } else {
            format!("{:.4}", m.received as f64 / m.expected as f64)
        };
        let mean = if m.received == 0 {
            String::new()
        } else {
            format!("{:.1}", m.latency_sum_ms as f64 / m.received as f64)
        };
        let (spy, guess, ok) = match m.first_spy {
            Some(f) => (
                f.spy.to_string(),
                f.guess.map_or(String::new(), |g| g.to_string()),
                (f.guess == Some(m.author)).to_string(),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},public",
            m.id,
            m.author,
            csv_field(&m.chat),
            m.sent_ms,
            m.expected,
            m.received,
            ratio,
            mean,
            m.latency_max_ms.map_or(String::new(), |v| v.to_string()),
            spy,
            guess,
            ok
        );
    }
    for m in &out.conversation_messages {
        let expected = m.expected.len();
        let received = m.received.len();
        // Not sent (skipped or refused): no ratio.
        let ratio = match (m.sent_ms, expected) {
            (None, _) => String::new(),
            (Some(_), 0) => String::new(),
            (Some(_), e) => format!("{:.4}", received as f64 / e as f64),
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},,,,{}",
            m.message_id.as_deref().unwrap_or(""),
            m.author,
            csv_field(&m.chat),
            m.sent_ms.map_or(String::new(), |v| v.to_string()),
            expected,
            received,
            ratio,
            m.latency_mean_ms()
                .map_or(String::new(), |v| format!("{v:.1}")),
            m.latency_max_ms().map_or(String::new(), |v| v.to_string()),
            m.kind.name()
        );
    }
    write("messages.csv", csv, &mut written)?;

    let mut nodes = String::from("node,bytes_up,bytes_down\n");
    for (i, t) in s.per_node.iter().enumerate() {
        let _ = writeln!(nodes, "{i},{},{}", t.bytes_up, t.bytes_down);
    }
    write("nodes.csv", nodes, &mut written)?;

    let n = out.latencies_ms.len().max(1) as f64;
    let cdf: Vec<(f64, f64)> = out
        .latencies_ms
        .iter()
        .enumerate()
        .map(|(i, &l)| (l as f64, (i + 1) as f64 / n))
        .collect();
    let path = dir.join("latency_cdf.svg");
    line_plot(
        &path,
        "Delivery latency CDF",
        "delivery latency (ms)",
        "fraction of deliveries (0 to 1)",
        &[("latency", thin(&cdf))],
        &[],
    )?;
    written.push(path);

    let mut per_node: Vec<(u64, u64)> = s
        .per_node
        .iter()
        .map(|t| (t.bytes_down, t.bytes_up))
        .collect();
    per_node.sort_unstable();
    let down: Vec<(f64, f64)> = per_node
        .iter()
        .enumerate()
        .map(|(i, &(d, _))| (i as f64, d as f64 / 1024.0))
        .collect();
    let up: Vec<(f64, f64)> = per_node
        .iter()
        .enumerate()
        .map(|(i, &(_, u))| (i as f64, u as f64 / 1024.0))
        .collect();
    let path = dir.join("bandwidth_per_node.svg");
    line_plot(
        &path,
        "Bandwidth per node (p2p layer), nodes sorted by download",
        "node rank (sorted by bytes received)",
        "bytes per node (KiB)",
        &[("down", thin(&down)), ("up", thin(&up))],
        &[],
    )?;
    written.push(path);

    let expected = s.deliveries_expected.max(1) as f64;
    let mut acc = 0u64;
    let over_time: Vec<(f64, f64)> = out
        .deliveries_per_bucket
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            acc += d;
            (
                ((i as u64 + 1) * DELIVERY_BUCKET_MS) as f64 / 1000.0,
                acc as f64 / expected,
            )
        })
        .collect();
    let bands: Vec<Band> = out
        .fault_windows
        .iter()
        .map(|w| Band {
            label: w.label.clone(),
            from: w.from_ms as f64 / 1000.0,
            to: w.to_ms as f64 / 1000.0,
            kind: w.kind,
        })
        .collect();
    let path = dir.join("delivery_over_time.svg");
    line_plot(
        &path,
        "Cumulative delivery ratio over time",
        "simulated time (s)",
        "cumulative delivery ratio (deliveries / expected)",
        &[("delivered", thin(&over_time))],
        &bands,
    )?;
    written.push(path);
    Ok(written)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One metric of a sweep row.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepMetric {
    /// Column name (a `summary.json` field).
    pub name: &'static str,
    /// Axis label, in words with the unit.
    pub label: &'static str,
    /// The value, if the run has it.
    pub value: Option<f64>,
    /// Why there is no value.
    pub missing: &'static str,
}

impl SweepMetric {
    /// `name value` or `name n/a (why)`.
    pub fn text(&self) -> String {
        match self.value {
            Some(v) => format!("{} {v:.4}", self.name),
            None => format!("{} n/a ({})", self.name, self.missing),
        }
    }
}

/// The metrics a sweep reports from a summary (never NaN: a missing figure is `None`).
pub fn sweep_metrics(s: &Summary) -> Vec<SweepMetric> {
    let m = |name, label, value: Option<f64>, missing| SweepMetric {
        name,
        label,
        value: value.filter(|v: &f64| v.is_finite()),
        missing,
    };
    let public_expected = s.deliveries_expected > 0;
    vec![
        m(
            "delivery_ratio",
            "delivery ratio (deliveries / expected)",
            public_expected.then_some(s.delivery_ratio),
            "no public message expected anywhere",
        ),
        m(
            "latency_ms_p50",
            "median delivery latency (ms)",
            s.latency_ms_p50.map(|v| v as f64),
            "no delivery",
        ),
        m(
            "latency_ms_p99",
            "99th percentile delivery latency (ms)",
            s.latency_ms_p99.map(|v| v as f64),
            "no delivery",
        ),
        m(
            "node_bytes_down_p50",
            "median bytes received per node (B)",
            s.node_bytes_down_p50.map(|v| v as f64),
            "no node",
        ),
        m(
            "amplification",
            "envelope copies received per new envelope",
            s.amplification,
            "no envelope pooled",
        ),
        m(
            "duplicate_factor_public",
            "public-chat copies received per new envelope",
            s.duplicate_factor.public.factor,
            "no public-chat envelope pooled",
        ),
        m(
            "first_spy_precision",
            "first-spy precision (correct / guessed)",
            s.privacy.as_ref().and_then(|p| p.precision),
            if s.privacy.is_none() {
                "no spies: set privacy.spy_fraction"
            } else {
                "no message reached a spy"
            },
        ),
        m(
            "delivery_ratio_live",
            "live delivery ratio (live deliveries / expected)",
            public_expected.then_some(s.delivery_ratio_live),
            "no public message expected anywhere",
        ),
    ]
}

/// A parameter path in words, with its unit: `partitions.0.heal_ms` → `partitions 0 heal
/// (ms)`, `link.bandwidth_kbps` → `link bandwidth (kbit/s)`.
pub fn param_label(param: &str) -> String {
    let (stem, unit) = if let Some(s) = param.strip_suffix("_ms") {
        (s, " (ms)")
    } else if let Some(s) = param.strip_suffix("_kbps") {
        (s, " (kbit/s)")
    } else if param.ends_with("fraction")
        || param.ends_with("loss")
        || param.ends_with("duplication")
    {
        (param, " (0 to 1)")
    } else {
        (param, "")
    };
    format!("{}{unit}", stem.replace(['.', '_'], " "))
}

/// Writes `sweep.csv` and a plot per metric of a sweep over `param`.
pub fn write_sweep(
    dir: &Path,
    param: &str,
    rows: &[(String, Summary)],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let metrics: Vec<SweepMetric> = rows
        .first()
        .map(|(_, s)| sweep_metrics(s))
        .unwrap_or_default();
    let names: Vec<&str> = metrics.iter().map(|m| m.name).collect();
    let mut csv = format!("{},{},trace_hash\n", csv_field(param), names.join(","));
    for (value, s) in rows {
        let vals: Vec<String> = sweep_metrics(s)
            .into_iter()
            .map(|m| m.value.map_or(String::new(), |v| format!("{v}")))
            .collect();
        let _ = writeln!(
            csv,
            "{},{},{}",
            csv_field(value),
            vals.join(","),
            s.trace_hash
        );
    }
    let path = dir.join("sweep.csv");
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    // x: the parameter value if numeric, else its position.
    let xs: Vec<f64> = rows
        .iter()
        .enumerate()
        .map(|(i, (v, _))| v.parse::<f64>().unwrap_or(i as f64))
        .collect();
    let x_label = param_label(param);
    for (k, metric) in metrics.iter().enumerate() {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .zip(&xs)
            .filter_map(|((_, s), &x)| Some((x, sweep_metrics(s).get(k)?.value?)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let path = dir.join(format!("sweep_{}.svg", metric.name));
        line_plot(
            &path,
            &format!("{} against {x_label}", metric.label),
            &x_label,
            metric.label,
            &[(metric.name, points)],
            &[],
        )?;
        written.push(path);
    }
    Ok(written)
}
