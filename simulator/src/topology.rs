//! Topologies: random d-regular graphs.
//!
//! Contract: [`random_regular`] returns the edge list of a simple d-regular graph on `n` nodes
//! (every node has exactly `d` neighbours, no self-loops, no multi-edges) as pairs `(a, b)` with
//! `a < b`, sorted, and **connected** (a disconnected overlay would measure the topology, not the
//! protocol: a random 2-regular graph is usually several disjoint cycles). It is a pure
//! function of `(n, d, rng state)`.
//!
//! Method: the configuration (pairing) model: `d` "points" per node, paired at random. A pure
//! pairing needs on average `exp((d²−1)/4)` restarts to be simple, so, as in Steger & Wormald
//! (1999), we only ever pair two points whose pairing keeps the graph simple, and restart
//! from scratch only when no such pair is left.

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
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
    if n.checked_mul(d).map_or(true, |s| s % 2 != 0) {
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
    let mut points: Vec<usize> = (0..n).flat_map(|v| std::iter::repeat(v).take(d)).collect();
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
