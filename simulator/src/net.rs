//! The network model: links between nodes, a seeded machine.
//!
//! Contract:
//! - Each link gets one one-way latency, drawn once when the link is created, uniformly in
//!   `[latency_min_ms, latency_max_ms]` from the network's own ChaCha20 RNG.
//! - Bytes on one direction of a link arrive in order, like TCP: [`Network::arrival`] never
//!   returns a time earlier than the previous arrival on the same direction (the engine breaks
//!   ties by sequence number, so equal times keep send order).
//! - The model holds no protocol knowledge; the engine keeps endpoint states here.

use hush_core::node::ConnId;
use hush_core::rng::{rng_from_seed, Rng, Seed};
use hush_core::Time;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Index of a link in [`Network::links`].
pub type LinkId = usize;

/// Which end of a link: the dialer is [`Side::Dialer`], the listener [`Side::Listener`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The node that dialed (`Direction::Outbound`).
    Dialer = 0,
    /// The node that was dialed (`Direction::Inbound`).
    Listener = 1,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Dialer => Side::Listener,
            Side::Listener => Side::Dialer,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The state of one end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndState {
    /// Created; the host has not yet been told (`handle_connection` pending).
    Pending,
    /// The host knows the connection; bytes flow.
    Open,
    /// The host emitted `Close`; its `handle_connection_closed` is queued.
    Closing,
    /// The host has been told the connection closed (or refused it). Nothing flows.
    Closed,
}

/// One end of a link.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The node at this end (index into the simulation's nodes).
    pub node: usize,
    /// The connection id this node knows the link by.
    pub conn: ConnId,
    /// Where this end is in its lifecycle.
    pub state: EndState,
}

/// A bidirectional TCP-like link.
#[derive(Clone, Debug)]
pub struct Link {
    /// One-way latency, both directions.
    pub latency_ms: u64,
    /// `[dialer, listener]`.
    pub ends: [Endpoint; 2],
    /// Per sending side, the arrival time of the last chunk sent that way.
    last_arrival: [Time; 2],
}

impl Link {
    /// The end on `side`.
    pub fn end(&self, side: Side) -> &Endpoint {
        &self.ends[side.index()]
    }

    /// The end on `side`, mutably.
    pub fn end_mut(&mut self, side: Side) -> &mut Endpoint {
        &mut self.ends[side.index()]
    }
}

/// Network parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Smallest one-way link latency.
    pub latency_min_ms: u64,
    /// Largest one-way link latency (inclusive).
    pub latency_max_ms: u64,
}

/// All links, and the RNG that draws their properties.
pub struct Network {
    config: NetConfig,
    rng: Rng,
    links: Vec<Link>,
}

impl Network {
    /// A network without links. `latency_max_ms` below `latency_min_ms` is treated as equal.
    pub fn new(config: NetConfig, seed: Seed) -> Network {
        Network {
            config,
            rng: rng_from_seed(seed),
            links: Vec::new(),
        }
    }

    /// Adds a link from `dialer` (known there as `dialer_conn`) to `listener`
    /// (`listener_conn`), drawing its latency. Both ends start [`EndState::Pending`].
    pub fn add_link(
        &mut self,
        dialer: usize,
        dialer_conn: ConnId,
        listener: usize,
        listener_conn: ConnId,
    ) -> LinkId {
        let min = self.config.latency_min_ms;
        let max = self.config.latency_max_ms.max(min);
        let latency_ms = self.rng.gen_range(min..=max);
        let end = |node, conn| Endpoint {
            node,
            conn,
            state: EndState::Pending,
        };
        self.links.push(Link {
            latency_ms,
            ends: [end(dialer, dialer_conn), end(listener, listener_conn)],
            last_arrival: [Time::ZERO; 2],
        });
        self.links.len() - 1
    }

    /// When something sent now from `from` arrives at the other end: `now + latency`, but never
    /// before what was sent earlier in the same direction (in-order delivery). Records it.
    pub fn arrival(&mut self, link: LinkId, from: Side, now: Time) -> Option<Time> {
        let l = self.links.get_mut(link)?;
        let slot = &mut l.last_arrival[from.index()];
        let at = now.plus_millis(l.latency_ms).max(*slot);
        *slot = at;
        Some(at)
    }

    /// The links, by id.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// One link.
    pub fn link(&self, id: LinkId) -> Option<&Link> {
        self.links.get(id)
    }

    /// One link, mutably.
    pub fn link_mut(&mut self, id: LinkId) -> Option<&mut Link> {
        self.links.get_mut(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_in_range_and_deterministic() {
        let cfg = NetConfig {
            latency_min_ms: 20,
            latency_max_ms: 100,
        };
        let mut a = Network::new(cfg.clone(), [7; 32]);
        let mut b = Network::new(cfg, [7; 32]);
        for i in 0..200 {
            a.add_link(0, i, 1, i);
            b.add_link(0, i, 1, i);
        }
        let la: Vec<u64> = a.links().iter().map(|l| l.latency_ms).collect();
        let lb: Vec<u64> = b.links().iter().map(|l| l.latency_ms).collect();
        assert_eq!(la, lb);
        assert!(la.iter().all(|&l| (20..=100).contains(&l)));
        assert!(la.iter().any(|&l| l != la[0]), "latencies should vary");
    }

    #[test]
    fn arrivals_never_go_backwards_per_direction() {
        let mut n = Network::new(
            NetConfig {
                latency_min_ms: 50,
                latency_max_ms: 50,
            },
            [1; 32],
        );
        let l = n.add_link(0, 1, 1, 1);
        assert_eq!(n.arrival(l, Side::Dialer, Time(0)), Some(Time(50)));
        assert_eq!(n.arrival(l, Side::Dialer, Time(10)), Some(Time(60)));
        // Directions are independent.
        assert_eq!(n.arrival(l, Side::Listener, Time(0)), Some(Time(50)));
        // A chunk can never overtake an earlier one on the same direction (55 < 60).
        assert_eq!(n.arrival(l, Side::Dialer, Time(5)), Some(Time(60)));
        assert_eq!(n.arrival(99, Side::Dialer, Time(0)), None);
    }
}
