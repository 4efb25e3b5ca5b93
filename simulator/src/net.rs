//! The network model: links between nodes, a seeded machine.
//!
//! Contract:
//! - Each link gets one one-way latency, drawn once when the link is created from the
//!   [`LinkModel`]'s [`LatencyDist`] with the network's own ChaCha20 RNG.
//! - A link is a TCP connection, so bytes on one direction arrive complete and in order:
//!   [`Network::transmit`] and [`Network::arrival`] never return a time earlier than the
//!   previous arrival on the same direction (the engine breaks ties by sequence number, so
//!   equal times keep send order).
//! - Bandwidth: each direction serialises its chunks one after another at `bandwidth_kbps`
//!   (1 kbit/s = 1 bit/ms), queued behind what it is still sending; tracked in µs.
//! - Loss: bytes cannot vanish from an RLPx stream (the next frame's MAC would fail), and TCP
//!   does not let them: a lost segment is retransmitted after a timeout. So each chunk is lost
//!   with probability `loss`, repeatedly (at most [`MAX_RETRANSMITS`] times), and each loss
//!   costs `rto_ms` of delay and one more serialisation of the chunk; everything behind it
//!   waits (head-of-line blocking, from in-order delivery).
//! - Duplication: a duplicated segment costs a second serialisation (wire bytes, queueing),
//!   and TCP discards the copy, so the host sees the bytes once.
//! - Reordering: inside one stream TCP delivers in order, so reordering is modelled as per-chunk
//!   jitter (`jitter_ms`), which reorders arrivals *across* connections only.
//! - The model holds no protocol knowledge; the engine keeps endpoint states here.

use crate::scenario::{LatencyDist, DEFAULT_RTO_MS};
use hush_core::node::ConnId;
use hush_core::rng::{rng_from_seed, Rng, Seed};
use hush_core::Time;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Retransmissions of one chunk at most: with `loss < 1` the chance of reaching it is
/// `loss^16`, and the cap keeps a pathological loss rate from stalling a link forever.
pub const MAX_RETRANSMITS: u32 = 16;

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
    /// Per sending side, when its serialiser is free again, µs since the epoch.
    tx_free_us: [u64; 2],
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

/// The full link model (see the module docs for the semantics of each field).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkModel {
    /// One-way latency, drawn per link.
    pub latency: LatencyDist,
    /// Per-direction bandwidth, kbit/s; `None` = unlimited.
    pub bandwidth_kbps: Option<u64>,
    /// Per-chunk loss probability, `[0, 1)`.
    pub loss: f64,
    /// Delay per loss.
    pub rto_ms: u64,
    /// Per-chunk duplication probability.
    pub duplication: f64,
    /// Per-chunk extra delay, uniform in `[0, jitter_ms]`.
    pub jitter_ms: u64,
}

impl From<NetConfig> for LinkModel {
    fn from(c: NetConfig) -> Self {
        LinkModel {
            latency: LatencyDist::Uniform {
                min_ms: c.latency_min_ms,
                max_ms: c.latency_max_ms,
            },
            bandwidth_kbps: None,
            loss: 0.0,
            rto_ms: DEFAULT_RTO_MS,
            duplication: 0.0,
            jitter_ms: 0,
        }
    }
}

/// When a chunk arrives and what it cost on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmission {
    /// Arrival time at the other end.
    pub at: Time,
    /// Bytes put on the wire, counting retransmissions and duplicates.
    pub wire_bytes: u64,
    /// Losses suffered.
    pub retransmits: u32,
    /// Whether a duplicate was sent.
    pub duplicated: bool,
}

/// Draws one latency from `dist` (ms, ≥ 0).
pub fn draw_latency_ms(dist: &LatencyDist, rng: &mut Rng) -> u64 {
    // Box–Muller: one standard normal from two uniforms (not cryptographic, needs no crate).
    let std_normal = |rng: &mut Rng| {
        let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.gen_range(0.0..1.0);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let ms = match *dist {
        LatencyDist::Constant { ms } => return ms,
        LatencyDist::Uniform { min_ms, max_ms } => {
            return rng.gen_range(min_ms..=max_ms.max(min_ms))
        }
        LatencyDist::Normal { mean_ms, sd_ms } => mean_ms + sd_ms * std_normal(rng),
        LatencyDist::Lognormal { median_ms, sigma } => {
            (median_ms.ln() + sigma * std_normal(rng)).exp()
        }
    };
    // Saturating float → int: negatives clamp to 0, NaN to 0, huge values to u64::MAX.
    ms.round().max(0.0) as u64
}

/// All links, and the RNG that draws their properties.
pub struct Network {
    model: LinkModel,
    rng: Rng,
    links: Vec<Link>,
}

impl Network {
    /// A network without links, uniform latency and nothing else. `latency_max_ms` below
    /// `latency_min_ms` is treated as equal.
    pub fn new(config: NetConfig, seed: Seed) -> Network {
        Network::with_model(config.into(), seed)
    }

    /// A network without links, with the full link model.
    pub fn with_model(model: LinkModel, seed: Seed) -> Network {
        Network {
            model,
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
        let latency_ms = draw_latency_ms(&self.model.latency, &mut self.rng);
        let end = |node, conn| Endpoint {
            node,
            conn,
            state: EndState::Pending,
        };
        self.links.push(Link {
            latency_ms,
            ends: [end(dialer, dialer_conn), end(listener, listener_conn)],
            last_arrival: [Time::ZERO; 2],
            tx_free_us: [0; 2],
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

    /// Sends `len` bytes now from `from`: serialisation behind earlier chunks, losses,
    /// duplication, jitter, latency, and in-order arrival. Records it.
    pub fn transmit(
        &mut self,
        link: LinkId,
        from: Side,
        now: Time,
        len: usize,
    ) -> Option<Transmission> {
        let m = &self.model;
        let mut retransmits = 0;
        if m.loss > 0.0 {
            while retransmits < MAX_RETRANSMITS && self.rng.gen_bool(m.loss) {
                retransmits += 1;
            }
        }
        let duplicated = m.duplication > 0.0 && self.rng.gen_bool(m.duplication);
        let jitter = if m.jitter_ms > 0 {
            self.rng.gen_range(0..=m.jitter_ms)
        } else {
            0
        };
        let copies = 1 + u64::from(retransmits) + u64::from(duplicated);
        let wire_bytes = (len as u64).saturating_mul(copies);
        let (bandwidth, rto) = (m.bandwidth_kbps, m.rto_ms);
        let l = self.links.get_mut(link)?;
        let i = from.index();
        let now_us = now.as_millis().saturating_mul(1000);
        let sent_ms = match bandwidth {
            None => now.as_millis(),
            Some(kbps) => {
                // bits / (kbit/s) = ms; × 1000 for µs.
                let ser_us = wire_bytes.saturating_mul(8_000) / kbps.max(1);
                let done = l.tx_free_us[i].max(now_us).saturating_add(ser_us);
                l.tx_free_us[i] = done;
                done.div_ceil(1000)
            }
        };
        let at = Time::from_millis(
            sent_ms
                .saturating_add(l.latency_ms)
                .saturating_add(jitter)
                .saturating_add(u64::from(retransmits).saturating_mul(rto)),
        )
        .max(l.last_arrival[i]);
        l.last_arrival[i] = at;
        Some(Transmission {
            at,
            wire_bytes,
            retransmits,
            duplicated,
        })
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
