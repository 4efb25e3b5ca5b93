//! Scenarios: what to simulate.
//!
//! Contract: a [`Scenario`] is plain data. [`Scenario::default`] is the built-in default
//! (50 nodes, degree 4, 20–100 ms links, everyone in public chat `hush-sim`, 10 messages one
//! every 2 s from t = 5 s, 30 s to drain); `scenarios/default.toml` spells the same values out.
//! TOML files may give any subset of fields; the rest take the defaults. All times are
//! relative to `start_ms` unless named otherwise.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// 2019-12-01T00:00:00Z in ms since the Unix epoch: the era of the protocol we simulate.
pub const DEFAULT_START_MS: u64 = 1_575_158_400_000;

/// A scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Simulated wall-clock time at the start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Degree of the random regular topology (`nodes × degree` must be even).
    pub degree: usize,
    /// Smallest one-way link latency.
    pub latency_min_ms: u64,
    /// Largest one-way link latency (inclusive).
    pub latency_max_ms: u64,
    /// Dials happen at uniformly random times in `[0, connect_window_ms]`.
    pub connect_window_ms: u64,
    /// The public chat every node joins.
    pub chat: String,
    /// When every node joins the chat.
    pub join_at_ms: u64,
    /// Number of messages, each from a uniformly random member.
    pub messages: u32,
    /// When the first message is sent.
    pub first_message_at_ms: u64,
    /// Gap between consecutive messages.
    pub message_interval_ms: u64,
    /// How long to keep running after the last message.
    pub drain_ms: u64,
    /// Total simulated run length; if absent, last message + `drain_ms`.
    pub duration_ms: Option<u64>,
    /// Cap on processed events; hitting it is reported as a liveness failure.
    pub max_events: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            start_ms: DEFAULT_START_MS,
            nodes: 50,
            degree: 4,
            latency_min_ms: 20,
            latency_max_ms: 100,
            connect_window_ms: 1_000,
            chat: "hush-sim".into(),
            join_at_ms: 0,
            messages: 10,
            first_message_at_ms: 5_000,
            message_interval_ms: 2_000,
            drain_ms: 30_000,
            duration_ms: None,
            // Generous: the default run needs a few hundred thousand events at most.
            max_events: 50_000_000,
        }
    }
}

/// A scenario that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Fewer than two nodes.
    #[error("a scenario needs at least 2 nodes, got {0}")]
    TooFewNodes(usize),
    /// `latency_min_ms > latency_max_ms`.
    #[error("latency_min_ms {min} > latency_max_ms {max}")]
    LatencyRange {
        /// Minimum.
        min: u64,
        /// Maximum.
        max: u64,
    },
    /// The TOML text did not parse.
    #[error("scenario TOML: {0}")]
    Toml(String),
}

impl Scenario {
    /// Parses a TOML scenario (missing fields take the defaults).
    pub fn from_toml_str(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Checks the parameters the engine cannot handle (the topology checks its own).
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.nodes < 2 {
            return Err(ScenarioError::TooFewNodes(self.nodes));
        }
        if self.latency_min_ms > self.latency_max_ms {
            return Err(ScenarioError::LatencyRange {
                min: self.latency_min_ms,
                max: self.latency_max_ms,
            });
        }
        Ok(())
    }

    /// Time of message `i` (0-based) relative to the start.
    pub fn message_at_ms(&self, i: u32) -> u64 {
        self.first_message_at_ms
            .saturating_add(u64::from(i).saturating_mul(self.message_interval_ms))
    }

    /// Run length relative to the start: `duration_ms`, or the last message + `drain_ms`.
    pub fn end_ms(&self) -> u64 {
        self.duration_ms.unwrap_or_else(|| {
            let last = self.message_at_ms(self.messages.saturating_sub(1));
            last.saturating_add(self.drain_ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_default_toml_matches_the_builtin_default() {
        let text = include_str!("../scenarios/default.toml");
        assert_eq!(Scenario::from_toml_str(text).unwrap(), Scenario::default());
    }

    #[test]
    fn partial_toml_takes_defaults_and_unknown_fields_fail() {
        let s = Scenario::from_toml_str("nodes = 8\ndegree = 2\n").unwrap();
        assert_eq!(
            s,
            Scenario {
                nodes: 8,
                degree: 2,
                ..Scenario::default()
            }
        );
        assert!(matches!(
            Scenario::from_toml_str("nodez = 8"),
            Err(ScenarioError::Toml(_))
        ));
        assert!(matches!(
            Scenario::from_toml_str("nodes = 1"),
            Err(ScenarioError::TooFewNodes(1))
        ));
    }

    #[test]
    fn default_timing() {
        let s = Scenario::default();
        assert_eq!(s.message_at_ms(0), 5_000);
        assert_eq!(s.message_at_ms(9), 23_000);
        assert_eq!(s.end_ms(), 53_000);
        assert_eq!(
            Scenario {
                duration_ms: Some(7),
                ..s
            }
            .end_ms(),
            7
        );
    }
}
