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
//! plotters' SVG backend only (no fonts or system libraries needed).

use crate::metrics::{Summary, DELIVERY_BUCKET_MS};
use crate::model::comparison_table;
use crate::run::RunOutput;
use anyhow::Context as _;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Points drawn at most per line (curves are thinned evenly beyond it; SVG size stays small).
pub const MAX_PLOT_POINTS: usize = 2_000;

/// Plot size in pixels.
const PLOT_SIZE: (u32, u32) = (800, 500);

fn opt(v: Option<u64>, unit: &str) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v} {unit}"))
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
            format!(
                "{:.4} ({} / {})",
                s.delivery_ratio, s.deliveries, s.deliveries_expected
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
                s.amplification.map_or("-".into(), |a| format!("{a:.2}"))
            ),
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
            format!(
                "{:.4} ({} / {}); p50 {} p99 {} max {}",
                k.delivery_ratio,
                k.deliveries,
                k.deliveries_expected,
                opt(k.latency_ms_p50, "ms"),
                opt(k.latency_ms_p99, "ms"),
                opt(k.latency_ms_max, "ms")
            ),
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
                p.precision.map_or("-".into(), |v| format!("{v:.3}")),
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

fn thin<T: Copy>(v: &[T]) -> Vec<T> {
    if v.len() <= MAX_PLOT_POINTS {
        return v.to_vec();
    }
    let step = v.len().div_ceil(MAX_PLOT_POINTS);
    let mut out: Vec<T> = v.iter().step_by(step).copied().collect();
    if let Some(&last) = v.last() {
        out.push(last);
    }
    out
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

/// Draws lines `(label, points)` into an SVG at `path`.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    y0 = y0.min(0.0);
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..(y1 * 1.05))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(plot_err)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
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
        let ratio = if m.expected == 0 {
            1.0
        } else {
            m.received as f64 / m.expected as f64
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
            "{},{},{},{},{},{},{:.4},{},{},{},{},{},public",
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
            (Some(_), 0) => "1.0000".into(),
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
        "latency (ms)",
        "fraction of deliveries",
        &[("latency", thin(&cdf))],
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
        "node rank",
        "KiB",
        &[("down", thin(&down)), ("up", thin(&up))],
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
    let path = dir.join("delivery_over_time.svg");
    line_plot(
        &path,
        "Cumulative delivery ratio over time",
        "simulated time (s)",
        "deliveries / expected",
        &[("delivered", thin(&over_time))],
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

/// The metrics a sweep reports, by name, from a summary.
pub fn sweep_metrics(s: &Summary) -> Vec<(&'static str, f64)> {
    let f = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64);
    vec![
        ("delivery_ratio", s.delivery_ratio),
        ("latency_ms_p50", f(s.latency_ms_p50)),
        ("latency_ms_p99", f(s.latency_ms_p99)),
        ("node_bytes_down_p50", f(s.node_bytes_down_p50)),
        ("amplification", s.amplification.unwrap_or(f64::NAN)),
        (
            "first_spy_precision",
            s.privacy
                .as_ref()
                .and_then(|p| p.precision)
                .unwrap_or(f64::NAN),
        ),
        ("delivery_ratio_live", s.delivery_ratio_live),
    ]
}

/// Writes `sweep.csv` and a plot per metric of a sweep over `param`.
pub fn write_sweep(
    dir: &Path,
    param: &str,
    rows: &[(String, Summary)],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let names: Vec<&str> = rows
        .first()
        .map(|(_, s)| sweep_metrics(s).into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    let mut csv = format!("{},{},trace_hash\n", csv_field(param), names.join(","));
    for (value, s) in rows {
        let vals: Vec<String> = sweep_metrics(s)
            .into_iter()
            .map(|(_, v)| {
                if v.is_nan() {
                    String::new()
                } else {
                    format!("{v}")
                }
            })
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
    for (k, name) in names.iter().enumerate() {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .zip(&xs)
            .filter_map(|((_, s), &x)| {
                let v = sweep_metrics(s).get(k)?.1;
                (!v.is_nan()).then_some((x, v))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let path = dir.join(format!("sweep_{name}.svg"));
        line_plot(
            &path,
            &format!("{name} against {param}"),
            param,
            name,
            &[(name, points)],
        )?;
        written.push(path);
    }
    Ok(written)
}
