//! Analytical models printed beside the simulation.
//!
//! Contract: [`whisper_scalability`] evaluates vacp2p/research `whisper_scalability/whisper.py`
//! (2019; the model is re-expressed here, not copied) for a number of users and puts the
//! simulated figure, extrapolated the same way, beside it. The model's unit is receive
//! bandwidth per user per day, in bytes, under its assumptions A1–A16:
//!
//! - case 1 (only messages meant for you): `envelope_size × envelopes_per_message ×
//!   received_messages_per_day`;
//! - case 2 (receiving messages for everyone): case 1 × users;
//! - case 6 (case 5 + benign duplicates): with private messages partitioned over 5000 shards,
//!   bloom false positives (p = 0.1) on the whole network's traffic, all × 2 duplicates.
//!
//! The simulation is a public chat everyone is in, i.e. the model's case 2 situation: every
//! node receives every message. Measured: bytes received per node per network message during
//! the message phase (RLPx-framed Whisper gossip, duplicates included); extrapolated to the
//! model's day: `users × received_messages_per_day` network messages per day.

use serde::Serialize;

/// A1: envelope size, bytes.
pub const ENVELOPE_SIZE_BYTES: f64 = 1024.0;
/// A2: envelopes per message (negotiation, data sync overhead).
pub const ENVELOPES_PER_MESSAGE: f64 = 10.0;
/// A6: proportion of private messages.
pub const PRIVATE_MESSAGE_PROPORTION: f64 = 0.5;
/// A9: partition topics.
pub const N_PARTITIONS: f64 = 5000.0;
/// A14: bloom false positive rate.
pub const BLOOM_FALSE_POSITIVE: f64 = 0.1;
/// A15: benign duplicate receives factor.
pub const BENIGN_DUPLICATE_RECEIVES: f64 = 2.0;

/// Model vs simulation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelComparison {
    /// Users in the model.
    pub users: u64,
    /// The model's received messages per user per day.
    pub received_messages_per_day: u64,
    /// Case 1, bytes per user per day.
    pub model_case1_bytes_per_day: f64,
    /// Case 2, bytes per user per day.
    pub model_case2_bytes_per_day: f64,
    /// Case 6, bytes per user per day.
    pub model_case6_bytes_per_day: f64,
    /// Simulated nodes.
    pub sim_nodes: u64,
    /// Messages the simulation sent.
    pub sim_messages: u64,
    /// Measured bytes received per node per network message.
    pub sim_bytes_per_node_per_message: Option<f64>,
    /// Measured, extrapolated to the model's day (comparable to case 2).
    pub sim_bytes_per_day: Option<f64>,
    /// Measured public-chat envelope copies per useful envelope, contact codes and other
    /// traffic apart (the model assumes 2 in case 6).
    pub sim_duplicate_factor: Option<f64>,
}

/// The model for `users` users, beside the simulation's figures.
pub fn whisper_scalability(
    users: u64,
    received_messages_per_day: u64,
    sim_nodes: u64,
    sim_messages: u64,
    sim_bytes_down_message_phase: u64,
    sim_duplicate_factor: Option<f64>,
) -> ModelComparison {
    let u = users as f64;
    let per_day = received_messages_per_day as f64;
    let case1 = ENVELOPE_SIZE_BYTES * ENVELOPES_PER_MESSAGE * per_day;
    let case2 = case1 * u;
    let factor = if u < N_PARTITIONS {
        1.0
    } else {
        u / N_PARTITIONS
    };
    let total =
        case1 * factor * PRIVATE_MESSAGE_PROPORTION + case1 * (1.0 - PRIVATE_MESSAGE_PROPORTION);
    let case6 = (total + case2 * BLOOM_FALSE_POSITIVE) * BENIGN_DUPLICATE_RECEIVES;
    let per_msg = (sim_messages > 0 && sim_nodes > 0)
        .then(|| sim_bytes_down_message_phase as f64 / sim_nodes as f64 / sim_messages as f64);
    ModelComparison {
        users,
        received_messages_per_day,
        model_case1_bytes_per_day: case1,
        model_case2_bytes_per_day: case2,
        model_case6_bytes_per_day: case6,
        sim_nodes,
        sim_messages,
        sim_bytes_per_node_per_message: per_msg,
        sim_bytes_per_day: per_msg.map(|b| b * u * per_day),
        sim_duplicate_factor,
    }
}

/// Bytes in the model's own style (`1024`-based, as `sizeof_fmt`).
pub fn human_bytes(mut v: f64) -> String {
    for unit in ["bytes", "KB", "MB", "GB", "TB"] {
        if v < 1024.0 {
            return format!("{v:.1}{unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1}PB")
}

/// The side-by-side table.
pub fn comparison_table(c: &ModelComparison) -> String {
    let sim = c.sim_bytes_per_day.map_or("-".into(), human_bytes);
    let mut out = format!(
        "whisper scalability model (vacp2p/research) for {} users, {} msgs/user/day — receive bandwidth per user per day\n",
        c.users, c.received_messages_per_day
    );
    out.push_str(&format!(
        "  model case 1 (only your messages)      {:>12}\n",
        human_bytes(c.model_case1_bytes_per_day)
    ));
    out.push_str(&format!(
        "  model case 2 (everyone's messages)     {:>12}\n",
        human_bytes(c.model_case2_bytes_per_day)
    ));
    out.push_str(&format!(
        "  model case 6 (shards+bloom+dups)       {:>12}\n",
        human_bytes(c.model_case6_bytes_per_day)
    ));
    out.push_str(&format!(
        "  simulated ({} nodes, {} msgs) → day    {:>12}   ({} per node per message, chat duplicate factor {})\n",
        c.sim_nodes,
        c.sim_messages,
        sim,
        c.sim_bytes_per_node_per_message
            .map_or("-".into(), human_bytes),
        c.sim_duplicate_factor
            .map_or("n/a (no chat envelope)".into(), |d| format!("{d:.2}")),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_matches_the_python_figures() {
        // whisper.py prints, for 100 users: case 1 "1000.0KB/day", case 2 "97.7MB/day";
        // for 10k users: case 2 "9.5GB/day", case 6 "1.9GB/day".
        let m = whisper_scalability(100, 100, 0, 0, 0, None);
        assert_eq!(human_bytes(m.model_case1_bytes_per_day), "1000.0KB");
        assert_eq!(human_bytes(m.model_case2_bytes_per_day), "97.7MB");
        let m = whisper_scalability(10_000, 100, 10, 5, 10 * 5 * 2_000, Some(3.0));
        assert_eq!(human_bytes(m.model_case2_bytes_per_day), "9.5GB");
        assert_eq!(human_bytes(m.model_case6_bytes_per_day), "1.9GB");
        assert_eq!(m.sim_bytes_per_node_per_message, Some(2_000.0));
        assert_eq!(m.sim_bytes_per_day, Some(2_000.0 * 10_000.0 * 100.0));
        assert!(comparison_table(&m).contains("9.5GB"));
    }
}
