//! Scenario validation: parsing with unknown keys refused, and every check a field must pass
//! (ranges, node selections, timelines), each error naming the field's path.

use super::*;
use thiserror::Error;

/// A scenario that cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
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
    /// A probability or fraction outside its range.
    #[error("{field} = {value} is outside {range}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range, in words.
        range: &'static str,
    },
    /// A node index past the node count.
    #[error("{field} names node {node}, but there are only {nodes} nodes")]
    NoSuchNode {
        /// Which field.
        field: &'static str,
        /// The index.
        node: usize,
        /// Node count.
        nodes: usize,
    },
    /// A selection asks for more nodes than there are.
    #[error("{field} selects {wanted} nodes, but there are only {nodes}")]
    TooManySelected {
        /// Which field.
        field: &'static str,
        /// Requested.
        wanted: usize,
        /// Node count.
        nodes: usize,
    },
    /// A zero where a positive value is needed.
    #[error("{0} must be positive")]
    MustBePositive(&'static str),
    /// `history.use_mailserver` without any node of role `mailserver`.
    #[error("history.use_mailserver = true needs at least one node with role \"mailserver\"")]
    NoMailserver,
    /// The scenario asks for something the node cannot do yet.
    #[error("not yet supported: {0}")]
    Unsupported(String),
    /// The scenario would need more memory than allowed ([`crate::memory::estimate`]).
    #[error(
        "this scenario needs about {} of memory ({nodes} nodes, {planned_messages} messages \
         planned), more than the limit of {}; use fewer nodes or messages, or raise the limit \
         with --max-memory-gb",
        crate::memory::gb(*estimate_bytes),
        crate::memory::gb(*limit_bytes)
    )]
    TooMuchMemory {
        /// The estimate, bytes.
        estimate_bytes: u64,
        /// The limit, bytes.
        limit_bytes: u64,
        /// Nodes.
        nodes: usize,
        /// Messages planned within the run.
        planned_messages: u64,
    },
    /// An impossible timeline (a heal before its partition, members added to a group before
    /// it exists, a fault after the run ends), by the field's path, e.g.
    /// `partitions[0].heal_ms`.
    #[error("{path}: {reason}")]
    Timeline {
        /// The field's path.
        path: String,
        /// Why, in words.
        reason: String,
    },
    /// A field's value contradicts the scenario (a group of one, late members without a time,
    /// a pair of a node with itself, more nodes asked than available).
    #[error("{field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why, in words.
        reason: String,
    },
}

fn check_fraction(field: &'static str, v: f64, max_inclusive: bool) -> Result<(), ScenarioError> {
    let ok = v >= 0.0 && if max_inclusive { v <= 1.0 } else { v < 1.0 };
    if ok {
        Ok(())
    } else {
        Err(ScenarioError::OutOfRange {
            field,
            value: v,
            range: if max_inclusive { "[0, 1]" } else { "[0, 1)" },
        })
    }
}

fn check_select(field: &'static str, s: &NodeSelect, nodes: usize) -> Result<(), ScenarioError> {
    if let Some(&node) = s.nodes.iter().find(|&&n| n >= nodes) {
        return Err(ScenarioError::NoSuchNode { field, node, nodes });
    }
    if let Some(f) = s.fraction {
        check_fraction(field, f, true)?;
    }
    let wanted = s.nodes.len() + s.count.unwrap_or(0);
    if wanted > nodes {
        return Err(ScenarioError::TooManySelected {
            field,
            wanted,
            nodes,
        });
    }
    Ok(())
}

/// The first key path in `written` that `understood` lacks.
fn unknown_key(written: &toml::Value, understood: &toml::Value, path: &str) -> Option<String> {
    match (written, understood) {
        (toml::Value::Table(w), toml::Value::Table(u)) => w.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match u.get(k) {
                None => Some(p),
                Some(uv) => unknown_key(v, uv, &p),
            }
        }),
        (toml::Value::Array(w), toml::Value::Array(u)) => w
            .iter()
            .zip(u)
            .enumerate()
            .find_map(|(i, (wv, uv))| unknown_key(wv, uv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

impl Scenario {
    /// Parses a TOML scenario (missing fields take the defaults) and validates it.
    pub fn from_toml_str(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        // serde cannot deny unknown fields inside flattened sections: compare what was written
        // with what was understood instead, so a typo is an error, never silently a default.
        let written: toml::Value =
            toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        let understood =
            toml::Value::try_from(&s).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        if let Some(path) = unknown_key(&written, &understood, "") {
            return Err(ScenarioError::Toml(format!("unknown field `{path}`")));
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks the parameters the engine cannot handle (the topology checks its own).
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let n = self.nodes;
        if n < 2 {
            return Err(ScenarioError::TooFewNodes(n));
        }
        if self.latency_min_ms > self.latency_max_ms {
            return Err(ScenarioError::LatencyRange {
                min: self.latency_min_ms,
                max: self.latency_max_ms,
            });
        }
        match &self.link.latency {
            Some(LatencyDist::Uniform { min_ms, max_ms }) if min_ms > max_ms => {
                return Err(ScenarioError::LatencyRange {
                    min: *min_ms,
                    max: *max_ms,
                })
            }
            Some(LatencyDist::Normal { mean_ms, sd_ms })
                if !(mean_ms.is_finite() && sd_ms.is_finite() && *sd_ms >= 0.0) =>
            {
                return Err(ScenarioError::OutOfRange {
                    field: "link.latency.sd_ms",
                    value: *sd_ms,
                    range: "finite, ≥ 0",
                })
            }
            Some(LatencyDist::Lognormal { median_ms, sigma })
                if !(*median_ms > 0.0
                    && median_ms.is_finite()
                    && sigma.is_finite()
                    && *sigma >= 0.0) =>
            {
                return Err(ScenarioError::OutOfRange {
                    field: "link.latency.median_ms",
                    value: *median_ms,
                    range: "median > 0, sigma ≥ 0",
                })
            }
            _ => {}
        }
        if self.link.bandwidth_kbps == Some(0) {
            return Err(ScenarioError::MustBePositive("link.bandwidth_kbps"));
        }
        // A loss of 1 would retransmit forever.
        check_fraction("link.loss", self.link.loss, false)?;
        check_fraction("link.duplication", self.link.duplication, true)?;
        if let Some(TopologySpec::ErdosRenyi { p }) = &self.topology {
            check_fraction("topology.p", *p, true)?;
        }
        if let Some(TopologySpec::Edges { edges }) = &self.topology {
            if let Some(&node) = edges.iter().flatten().find(|&&v| v >= n) {
                return Err(ScenarioError::NoSuchNode {
                    field: "topology.edges",
                    node,
                    nodes: n,
                });
            }
        }
        for r in &self.roles {
            check_select("roles", &r.select, n)?;
        }
        for p in &self.partitions {
            check_select("partitions", &p.side, n)?;
        }
        for c in &self.crashes {
            check_select("crashes", &c.select, n)?;
        }
        if let Some(c) = &self.churn {
            check_fraction("churn.offline_fraction", c.offline_fraction, false)?;
            check_select("churn", &c.select, n)?;
            if c.mean_online_ms == 0 {
                return Err(ScenarioError::MustBePositive("churn.mean_online_ms"));
            }
        }
        for p in &self.traffic.public {
            check_select("traffic.public.members", &p.members, n)?;
        }
        for o in &self.traffic.one_to_one {
            for &[a, b] in &o.explicit {
                if let Some(node) = [a, b].into_iter().find(|&v| v >= n) {
                    return Err(ScenarioError::NoSuchNode {
                        field: "traffic.one_to_one.explicit",
                        node,
                        nodes: n,
                    });
                }
                if a == b {
                    return Err(ScenarioError::Invalid {
                        field: "traffic.one_to_one.explicit",
                        reason: format!("pair [{a}, {b}] is one node"),
                    });
                }
            }
            if o.pairs > n * (n - 1) / 2 {
                return Err(ScenarioError::TooManySelected {
                    field: "traffic.one_to_one.pairs",
                    wanted: o.pairs,
                    nodes: n,
                });
            }
        }
        for g in &self.traffic.groups {
            if g.size < 2 {
                return Err(ScenarioError::Invalid {
                    field: "traffic.groups.size",
                    reason: format!("a group needs at least 2 members, got {}", g.size),
                });
            }
            if g.size + g.late_members > n {
                return Err(ScenarioError::TooManySelected {
                    field: "traffic.groups.size",
                    wanted: g.size + g.late_members,
                    nodes: n,
                });
            }
            check_select("traffic.groups.among", &g.among, n)?;
            if g.late_members > 0 && g.late_at_ms.is_none() {
                return Err(ScenarioError::Invalid {
                    field: "traffic.groups.late_at_ms",
                    reason: "late_members > 0 needs late_at_ms".into(),
                });
            }
        }
        for s in self
            .traffic
            .one_to_one
            .iter()
            .map(|o| &o.schedule)
            .chain(self.traffic.groups.iter().map(|g| &g.schedule))
            .chain(self.traffic.public.iter().map(|p| &p.schedule))
        {
            if s.poisson && s.interval_ms == 0 && s.messages > 0 {
                return Err(ScenarioError::MustBePositive("interval_ms (poisson)"));
            }
        }
        for o in &self.offline {
            check_select("offline", &o.select, n)?;
            if o.duration_ms == 0 {
                return Err(ScenarioError::MustBePositive("offline.duration_ms"));
            }
        }
        check_select("history", &self.history.clients, n)?;
        if self.node.contact_codes && self.node.contact_code_interval_ms == 0 {
            return Err(ScenarioError::MustBePositive(
                "node.contact_code_interval_ms",
            ));
        }
        if self.history.max_attempts == 0 {
            return Err(ScenarioError::MustBePositive("history.max_attempts"));
        }
        if self.history.retry_interval_ms == 0 {
            return Err(ScenarioError::MustBePositive("history.retry_interval_ms"));
        }
        if self.history.use_mailserver
            && !self
                .roles
                .iter()
                .any(|r| r.role == Role::Mailserver && !r.select.is_empty())
        {
            return Err(ScenarioError::NoMailserver);
        }
        check_fraction("privacy.spy_fraction", self.privacy.spy_fraction, true)?;
        self.validate_timeline()
    }

    /// Times that contradict each other or the run's length.
    fn validate_timeline(&self) -> Result<(), ScenarioError> {
        let end = self.end_ms();
        let bad = |path: String, reason: String| Err(ScenarioError::Timeline { path, reason });
        let after_end = |path: String, at: u64| {
            bad(
                path,
                format!("{at} ms is not before the end of the run ({end} ms): it never happens"),
            )
        };
        for (i, p) in self.partitions.iter().enumerate() {
            if p.at_ms >= end {
                return after_end(format!("partitions[{i}].at_ms"), p.at_ms);
            }
            if let Some(heal) = p.heal_ms {
                if heal <= p.at_ms {
                    return bad(
                        format!("partitions[{i}].heal_ms"),
                        format!(
                            "heals at {heal} ms, not after the partition starts at {} ms",
                            p.at_ms
                        ),
                    );
                }
            }
        }
        for (i, c) in self.crashes.iter().enumerate() {
            if c.at_ms >= end {
                return after_end(format!("crashes[{i}].at_ms"), c.at_ms);
            }
        }
        for (i, o) in self.offline.iter().enumerate() {
            if o.at_ms >= end {
                return after_end(format!("offline[{i}].at_ms"), o.at_ms);
            }
            if o.at_ms.checked_add(o.duration_ms).is_none() {
                return bad(
                    format!("offline[{i}].duration_ms"),
                    "the window would end past the end of time".into(),
                );
            }
        }
        if let Some(c) = &self.churn {
            if c.start_ms >= end {
                return after_end("churn.start_ms".into(), c.start_ms);
            }
        }
        for (i, g) in self.traffic.groups.iter().enumerate() {
            if let Some(late) = g.late_at_ms {
                if late < g.create_at_ms {
                    return bad(
                        format!("traffic.groups[{i}].late_at_ms"),
                        format!(
                            "members added at {late} ms, before the group is created at {} ms",
                            g.create_at_ms
                        ),
                    );
                }
            }
        }
        if self.duration_ms == Some(0) {
            return Err(ScenarioError::MustBePositive("duration_ms"));
        }
        Ok(())
    }
}
