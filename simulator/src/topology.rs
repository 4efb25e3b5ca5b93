//! Topologies: random d-regular, Erdős–Rényi, Barabási–Albert and explicit graphs.
//!
//! Contract: every builder returns a sorted list of distinct edges `(a, b)`, `a < b`, of a
//! simple graph, as a pure function of its parameters and the rng state; [`build`] picks one
//! from a [`TopologySpec`]. The random families are **connected** (Erdős–Rényi is redrawn until
//! it is; Barabási–Albert is connected by construction); an explicit edge list is taken as
//! given (self-loops are an error, duplicates are merged) so a researcher can study a
//! disconnected overlay on purpose.
//!
//! [`random_regular`] returns the edge list of a simple d-regular graph on `n` nodes
//! (every node has exactly `d` neighbours, no self-loops, no multi-edges) as pairs `(a, b)` with
//! `a < b`, sorted, and **connected** (a disconnected overlay would measure the topology, not the
//! protocol: a random 2-regular graph is usually several disjoint cycles). It is a pure
//! function of `(n, d, rng state)`.
//!
//! Method: the configuration (pairing) model: `d` "points" per node, paired at random. A pure
//! pairing needs on average `exp((d²−1)/4)` restarts to be simple, so, as in Steger & Wormald
//! (1999), we only ever pair two points whose pairing keeps the graph simple, and restart
//! from scratch only when no such pair is left.

use crate::scenario::TopologySpec;
use rand::{Rng, RngCore};
use std::collections::BTreeSet;
use thiserror::Error;

/// Restarts of the pairing before giving up. With the Steger–Wormald rule a restart is rare
/// (it needs the last few points to be mutually unpairable); 1000 is far beyond any case seen.
pub const MAX_TOPOLOGY_RESTARTS: u32 = 1000;

/// Random point pairs tried before scanning for any suitable pair. Random tries are O(1) and
/// almost always succeed; the O(points²) scan only runs near the end of a pairing.
const RANDOM_PAIR_TRIES: u32 = 64;

/// Why no graph could be built.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// `n × d` is odd: the degrees cannot sum to twice an edge count.
    #[error("n × d must be even (n = {nodes}, d = {degree})")]
    OddDegreeSum {
        /// Node count.
        nodes: usize,
        /// Degree.
        degree: usize,
    },
    /// `d ≥ n`: a simple graph cannot give a node more neighbours than there are other nodes.
    #[error("degree {degree} needs more than {nodes} nodes")]
    DegreeTooLarge {
        /// Node count.
        nodes: usize,
        /// Degree.
        degree: usize,
    },
    /// No `d`-regular graph on `n` nodes is connected (d = 0, or d = 1 with n > 2).
    #[error("no {degree}-regular graph on {nodes} nodes is connected")]
    CannotBeConnected {
        /// Node count.
        nodes: usize,
        /// Degree.
        degree: usize,
    },
    /// Erdős–Rényi `p` too small to ever be connected in [`MAX_TOPOLOGY_RESTARTS`] draws.
    #[error("G({nodes}, {p}) was disconnected in every one of {restarts} draws")]
    NeverConnected {
        /// Node count.
        nodes: usize,
        /// Edge probability.
        p: f64,
        /// Draws made.
        restarts: u32,
    },
    /// Barabási–Albert needs `1 ≤ m < n`.
    #[error("Barabási–Albert needs 1 ≤ m < n (n = {nodes}, m = {m})")]
    BadAttachment {
        /// Node count.
        nodes: usize,
        /// Edges per new node.
        m: usize,
    },
    /// An explicit edge joins a node to itself.
    #[error("edge ({0}, {0}) is a self-loop")]
    SelfLoop(usize),
    /// An explicit edge names a node past the node count.
    #[error("edge names node {node}, but there are only {nodes} nodes")]
    NoSuchNode {
        /// The index.
        node: usize,
        /// Node count.
        nodes: usize,
    },
    /// [`MAX_TOPOLOGY_RESTARTS`] pairings all got stuck or were disconnected.
    #[error("no connected simple {degree}-regular graph found on {nodes} nodes after {restarts} restarts")]
    GaveUp {
        /// Node count.
        nodes: usize,
        /// Degree.
        degree: usize,
        /// Restarts made.
        restarts: u32,
    },
}

/// A random simple `d`-regular graph on `n` nodes as a sorted list of edges `(a, b)`, `a < b`.
pub fn random_regular(
    n: usize,
    d: usize,
    rng: &mut impl RngCore,
) -> Result<Vec<(usize, usize)>, TopologyError> {
    if n.checked_mul(d).is_none_or(|s| s % 2 != 0) {
        return Err(TopologyError::OddDegreeSum {
            nodes: n,
            degree: d,
        });
    }
    if d > 0 && d >= n {
        return Err(TopologyError::DegreeTooLarge {
            nodes: n,
            degree: d,
        });
    }
    // Degree 0 leaves nodes isolated and degree 1 is a perfect matching: neither is connected
    // beyond two nodes.
    if (n > 2 && d < 2) || (n == 2 && d == 0) {
        return Err(TopologyError::CannotBeConnected {
            nodes: n,
            degree: d,
        });
    }
    for _ in 0..MAX_TOPOLOGY_RESTARTS {
        if let Some(edges) = try_pairing(n, d, rng) {
            let edges: Vec<(usize, usize)> = edges.into_iter().collect();
            if is_connected(n, &edges) {
                return Ok(edges);
            }
        }
    }
    Err(TopologyError::GaveUp {
        nodes: n,
        degree: d,
        restarts: MAX_TOPOLOGY_RESTARTS,
    })
}

/// The graph `spec` describes on `n` nodes.
pub fn build(
    spec: &TopologySpec,
    n: usize,
    rng: &mut impl RngCore,
) -> Result<Vec<(usize, usize)>, TopologyError> {
    match spec {
        TopologySpec::RandomRegular { degree } => random_regular(n, *degree, rng),
        TopologySpec::ErdosRenyi { p } => erdos_renyi(n, *p, rng),
        TopologySpec::BarabasiAlbert { m } => barabasi_albert(n, *m, rng),
        TopologySpec::Edges { edges } => explicit(n, edges),
    }
}

/// Erdős–Rényi G(n, p): every pair independently with probability `p`, redrawn until
/// connected (at most [`MAX_TOPOLOGY_RESTARTS`] draws). O(n²) per draw.
pub fn erdos_renyi(
    n: usize,
    p: f64,
    rng: &mut impl RngCore,
) -> Result<Vec<(usize, usize)>, TopologyError> {
    let p = p.clamp(0.0, 1.0);
    for _ in 0..MAX_TOPOLOGY_RESTARTS {
        let mut edges = Vec::new();
        for a in 0..n {
            for b in (a + 1)..n {
                if rng.gen_bool(p) {
                    edges.push((a, b));
                }
            }
        }
        if is_connected(n, &edges) {
            return Ok(edges);
        }
    }
    Err(TopologyError::NeverConnected {
        nodes: n,
        p,
        restarts: MAX_TOPOLOGY_RESTARTS,
    })
}

/// Barabási–Albert: start from a clique of `m + 1` nodes; each further node links to `m`
/// distinct existing nodes chosen with probability proportional to their degree.
pub fn barabasi_albert(
    n: usize,
    m: usize,
    rng: &mut impl RngCore,
) -> Result<Vec<(usize, usize)>, TopologyError> {
    if m == 0 || m >= n {
        return Err(TopologyError::BadAttachment { nodes: n, m });
    }
    let mut edges = BTreeSet::new();
    // Each node appears once per incident edge: sampling it is degree-proportional.
    let mut ends: Vec<usize> = Vec::new();
    for a in 0..=m {
        for b in (a + 1)..=m {
            edges.insert((a, b));
            ends.push(a);
            ends.push(b);
        }
    }
    for v in (m + 1)..n {
        let mut targets = BTreeSet::new();
        while targets.len() < m {
            // `ends` is non-empty: the seed clique has m ≥ 1 edges or (m = 1) one edge.
            let t = ends[rng.gen_range(0..ends.len())];
            targets.insert(t);
        }
        for t in targets {
            edges.insert((t, v));
            ends.push(t);
            ends.push(v);
        }
    }
    Ok(edges.into_iter().collect())
}

/// An explicit edge list, normalised to `(min, max)`, sorted and deduplicated.
pub fn explicit(n: usize, edges: &[[usize; 2]]) -> Result<Vec<(usize, usize)>, TopologyError> {
    let mut out = BTreeSet::new();
    for &[a, b] in edges {
        if a == b {
            return Err(TopologyError::SelfLoop(a));
        }
        if let Some(node) = [a, b].into_iter().find(|&v| v >= n) {
            return Err(TopologyError::NoSuchNode { node, nodes: n });
        }
        out.insert((a.min(b), a.max(b)));
    }
    Ok(out.into_iter().collect())
}

/// True if the graph on `n` nodes with `edges` is connected (n ≤ 1 counts as connected).
pub fn is_connected(n: usize, edges: &[(usize, usize)]) -> bool {
    if n <= 1 {
        return true;
    }
    let mut adjacency = vec![Vec::new(); n];
    for &(a, b) in edges {
        adjacency[a].push(b);
        adjacency[b].push(a);
    }
    let mut seen = vec![false; n];
    let mut stack = vec![0];
    seen[0] = true;
    let mut reached = 1;
    while let Some(v) = stack.pop() {
        for &w in &adjacency[v] {
            if !seen[w] {
                seen[w] = true;
                reached += 1;
                stack.push(w);
            }
        }
    }
    reached == n
}

/// One pairing attempt; `None` if it got stuck.
fn try_pairing(n: usize, d: usize, rng: &mut impl RngCore) -> Option<BTreeSet<(usize, usize)>> {
    let mut points: Vec<usize> = (0..n).flat_map(|v| std::iter::repeat_n(v, d)).collect();
    let mut edges = BTreeSet::new();
    let suitable = |edges: &BTreeSet<(usize, usize)>, u: usize, v: usize| {
        u != v && !edges.contains(&(u.min(v), u.max(v)))
    };
    while points.len() >= 2 {
        let len = points.len();
        let mut chosen = None;
        for _ in 0..RANDOM_PAIR_TRIES {
            let i = rng.gen_range(0..len);
            let j = rng.gen_range(0..len);
            if i != j && suitable(&edges, points[i], points[j]) {
                chosen = Some((i, j));
                break;
            }
        }
        if chosen.is_none() {
            let all: Vec<(usize, usize)> = (0..len)
                .flat_map(|i| ((i + 1)..len).map(move |j| (i, j)))
                .filter(|&(i, j)| suitable(&edges, points[i], points[j]))
                .collect();
            if all.is_empty() {
                return None;
            }
            chosen = Some(all[rng.gen_range(0..all.len())]);
        }
        let (i, j) = chosen?;
        let (u, v) = (points[i], points[j]);
        edges.insert((u.min(v), u.max(v)));
        // Remove the higher index first so the lower one stays valid.
        points.swap_remove(i.max(j));
        points.swap_remove(i.min(j));
    }
    Some(edges)
}

#[cfg(test)]
mod tests;
