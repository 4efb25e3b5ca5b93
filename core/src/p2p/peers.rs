//! Peer management as a pure state machine: which connections a node keeps, which it refuses
//! and which static peers it (re)dials ([G-srv] `Server.run`, `postHandshakeChecks`,
//! `dialstate`; rlpx.md §7 for the reasons used).
//!
//! Contract:
//! - The owner (`core::node`) reports every connection's life: a node-initiated dial that
//!   connected or failed ([`Peers::handle_outbound`], [`Peers::handle_dial_failed`]), a
//!   driver-initiated outbound connection or an inbound one ([`Peers::handle_outbound`],
//!   [`Peers::handle_inbound`]), the session reaching `Established` with a proven remote key
//!   ([`Peers::handle_established`]) and the connection ending ([`Peers::handle_closed`]).
//! - New connections and established sessions get a verdict ([`InboundVerdict`],
//!   [`Admission`]): accept, or refuse with the devp2p reason to send. Limits: handshakes in
//!   flight ([`Config::max_pending_handshakes`], counted separately for inbound and outbound
//!   connections as geth's `MaxPendingPeers` is; refused before any crypto work), established
//!   inbound and outbound peers ([`Config::max_inbound`], [`Config::max_outbound`], checked
//!   once the remote key is proven, as geth does, answered with `TooManyPeers`). Static peers
//!   bypass the peer limits (geth `staticDialedConn`/`trustedConn`).
//! - Idle sockets cannot lock the node out (issue 16): an inbound connection is refused when
//!   its address ([`ip_group`]: an IPv4 address or an IPv6 /64) already has
//!   [`Config::max_pending_handshakes_per_ip`] handshakes in flight; otherwise, when the
//!   inbound pending table is full (or the owner says it holds all the connections it may),
//!   the oldest pending inbound handshake is evicted ([`Action::Disconnect`]) to make room for
//!   the newcomer. Established sessions and outbound connections (our dials to static peers)
//!   are never evicted and never count against the inbound table.
//! - Duplicates: a second established session with the same remote key is resolved by one
//!   rule both ends compute alike, so they keep the same TCP connection: when the two
//!   connections have opposite directions, keep the one dialed by the node with the smaller
//!   key (byte order); otherwise keep the older one. The loser gets `AlreadyConnected`.
//! - Self: dialing our own key is refused with [`PeersError::SelfDial`]; a session whose
//!   remote is ourselves is refused with `SelfConnect`.
//! - Static peers are dialed by emitting [`Action::Dial`] with a connection id from
//!   [`DIAL_CONN_ID_BASE`] upwards (drivers assign their own ids below it). After a failed
//!   dial, a dial timeout or a lost connection the next attempt waits an exponential backoff
//!   ([`Config::redial_initial_backoff_ms`] doubling up to [`Config::redial_max_backoff_ms`]);
//!   a connection that stayed up [`Config::backoff_reset_after_ms`] resets it.
//! - Every refusal and eviction is counted by reason in [`PeerStats`].
//! - Pure and deterministic: no clock, no randomness, BTreeMaps only; everything is bounded
//!   by the config (connections by the owner's limits, static peers by
//!   [`Config::max_static_peers`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use thiserror::Error;

use super::enode::Enode;
use super::session::DisconnectReason;
use crate::time::earliest;
use crate::Time;

/// A connection identifier (the same id space as `core::node::ConnId`).
pub type ConnId = u64;
/// A node's public key in wire form (X‖Y).
pub type NodeId = [u8; 64];

/// Connection ids at or above this are assigned by [`Peers`] to its own dials; drivers must
/// number the connections they open or accept below it.
pub const DIAL_CONN_ID_BASE: ConnId = 1 << 63;
/// Established inbound peers kept at most. geth's default `MaxPeers` is 25 with a third
/// reserved for dialing (`DialRatio` 3), so about 16 inbound.
pub const DEFAULT_MAX_INBOUND: usize = 16;
/// Established outbound (non-static) peers kept at most (geth: `MaxPeers / DialRatio`).
pub const DEFAULT_MAX_OUTBOUND: usize = 8;
/// Connections still in the RLPx handshake or Hello at once, inbound and outbound each (geth
/// `defaultMaxPendingPeers`).
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 50;
/// Inbound handshakes in flight from one address ([`ip_group`]) at once. A real peer has one
/// handshake at a time (a few ms on a LAN, a few round trips on the Internet); 8 leaves room
/// for several nodes behind one NAT, while one address can hold at most 8 of the
/// [`DEFAULT_MAX_PENDING_HANDSHAKES`] slots for the handshake timeout (5 s).
pub const DEFAULT_MAX_PENDING_HANDSHAKES_PER_IP: usize = 8;
/// Static peers configured at most.
pub const DEFAULT_MAX_STATIC_PEERS: usize = 256;
/// First redial delay after a static peer's dial failed or its connection ended.
pub const DEFAULT_REDIAL_INITIAL_BACKOFF_MS: u64 = 1_000;
/// Cap of the doubling redial delay.
pub const DEFAULT_REDIAL_MAX_BACKOFF_MS: u64 = 120_000;
/// A connection that lasted this long resets the backoff to its initial value.
pub const DEFAULT_BACKOFF_RESET_AFTER_MS: u64 = 60_000;
/// A dial the driver has not reported as connected or failed after this long counts as
/// failed (geth `defaultDialTimeout` is 15 s).
pub const DEFAULT_DIAL_TIMEOUT_MS: u64 = 15_000;

/// Peer management settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Established inbound peers kept at most (static peers not counted).
    pub max_inbound: usize,
    /// Established outbound peers kept at most (static peers not counted).
    pub max_outbound: usize,
    /// Connections in the handshake at once, inbound and outbound counted apart. A new
    /// inbound one beyond it evicts the oldest pending inbound handshake; a driver-initiated
    /// outbound one beyond it is refused.
    pub max_pending_handshakes: usize,
    /// Inbound handshakes in flight from one address ([`ip_group`]); more are closed
    /// unanswered.
    pub max_pending_handshakes_per_ip: usize,
    /// Static peers configured at most.
    pub max_static_peers: usize,
    /// First redial delay.
    pub redial_initial_backoff_ms: u64,
    /// Largest redial delay.
    pub redial_max_backoff_ms: u64,
    /// Connection lifetime after which the backoff resets.
    pub backoff_reset_after_ms: u64,
    /// How long a dial may stay unreported.
    pub dial_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_inbound: DEFAULT_MAX_INBOUND,
            max_outbound: DEFAULT_MAX_OUTBOUND,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            max_pending_handshakes_per_ip: DEFAULT_MAX_PENDING_HANDSHAKES_PER_IP,
            max_static_peers: DEFAULT_MAX_STATIC_PEERS,
            redial_initial_backoff_ms: DEFAULT_REDIAL_INITIAL_BACKOFF_MS,
            redial_max_backoff_ms: DEFAULT_REDIAL_MAX_BACKOFF_MS,
            backoff_reset_after_ms: DEFAULT_BACKOFF_RESET_AFTER_MS,
            dial_timeout_ms: DEFAULT_DIAL_TIMEOUT_MS,
        }
    }
}

/// Caller misuse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeersError {
    /// The node was asked to dial its own key.
    #[error("refusing to dial our own node key")]
    SelfDial,
    /// The static peer list is full.
    #[error("static peer limit {max} reached")]
    TooManyStaticPeers {
        /// The limit.
        max: usize,
    },
    /// The connection id is already in use.
    #[error("connection {0} already exists")]
    DuplicateConnection(ConnId),
    /// A driver used an id reserved for the node's own dials, or reported a dial the node
    /// did not ask for (or that already timed out).
    #[error("connection id {0} is not a pending dial of this node")]
    UnknownDial(ConnId),
    /// A dial connected to a different key than the one dialed.
    #[error("dial {0} reported with a different remote key")]
    DialKeyMismatch(ConnId),
}

/// Verdict on a new connection or an established session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Keep it.
    Accept,
    /// Refuse it with this reason (for a new connection: close it without answering).
    Reject(DisconnectReason),
}

/// Verdict on a new inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundVerdict {
    /// Start the handshake (an older pending one may have been evicted for it: see
    /// [`Action::Disconnect`]).
    Accept,
    /// Close it without answering.
    Refuse(InboundRefusal),
}

/// Why a new inbound connection was refused (each counted in [`PeerStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundRefusal {
    /// Its address already has [`Config::max_pending_handshakes_per_ip`] handshakes in flight.
    PendingPerIpLimit,
    /// The inbound pending table is full and holds nothing to evict
    /// ([`Config::max_pending_handshakes`] is 0).
    PendingLimit,
    /// The owner holds all the connections it may and no inbound handshake is pending.
    ConnectionLimit,
}

impl InboundRefusal {
    /// Stable snake_case name (drop log).
    pub fn label(self) -> &'static str {
        match self {
            InboundRefusal::PendingPerIpLimit => "max_pending_handshakes_per_ip",
            InboundRefusal::PendingLimit => "max_pending_handshakes",
            InboundRefusal::ConnectionLimit => "max_connections",
        }
    }
}

/// The address an inbound connection counts under for
/// [`Config::max_pending_handshakes_per_ip`]: an IPv4 address, or the /64 prefix of an IPv6
/// one (a single host is commonly given a whole /64); an IPv4-mapped IPv6 address counts as
/// its IPv4 address.
pub fn ip_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Work for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to `enode` and report it with id `conn`: on success as an
    /// outbound connection to `enode.public_key`, else as a failed dial.
    Dial {
        /// The id to use for the connection.
        conn: ConnId,
        /// Whom to dial.
        enode: Enode,
    },
    /// End a session with this reason: the loser of a duplicate pair (`AlreadyConnected`),
    /// or a pending inbound handshake evicted for a newer connection (`TooManyPeers`; one
    /// still in the RLPx handshake has no frame to say it in and just closes).
    Disconnect {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: DisconnectReason,
    },
}

/// Direction of a tracked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The remote dialed us.
    Inbound,
    /// We dialed (the key is known from the start).
    Outbound,
}

/// Counters (monotonic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Dials emitted.
    pub dials: u64,
    /// Dials reported failed.
    pub dials_failed: u64,
    /// Dials never reported within `dial_timeout_ms`.
    pub dial_timeouts: u64,
    /// New connections closed because `max_pending_handshakes` was reached and nothing could
    /// be evicted (driver-initiated outbound ones; inbound ones only when the limit is 0).
    pub rejected_pending_limit: u64,
    /// New inbound connections closed because their address had
    /// `max_pending_handshakes_per_ip` handshakes in flight.
    pub rejected_pending_per_ip: u64,
    /// New inbound connections closed because the owner held all the connections it may and
    /// no inbound handshake was pending to evict.
    pub rejected_connection_limit: u64,
    /// Pending inbound handshakes evicted (oldest first) to make room for a new inbound
    /// connection in the full pending table.
    pub evicted_pending_limit: u64,
    /// Pending inbound handshakes evicted (oldest first) because the owner held all the
    /// connections it may when a new inbound one arrived.
    pub evicted_connection_limit: u64,
    /// Sessions refused with `TooManyPeers`.
    pub rejected_too_many_peers: u64,
    /// Sessions ended with `AlreadyConnected`.
    pub duplicates: u64,
    /// Sessions refused with `SelfConnect`.
    pub self_connects: u64,
}

impl PeerStats {
    /// Every counter as `(name, value)` (see [`crate::stats`]).
    pub fn counters(&self) -> crate::stats::Counters {
        crate::stats::list([
            ("dials", self.dials),
            ("dials_failed", self.dials_failed),
            ("dial_timeouts", self.dial_timeouts),
            ("rejected_pending_limit", self.rejected_pending_limit),
            ("rejected_pending_per_ip", self.rejected_pending_per_ip),
            ("rejected_connection_limit", self.rejected_connection_limit),
            ("evicted_pending_limit", self.evicted_pending_limit),
            ("evicted_connection_limit", self.evicted_connection_limit),
            ("rejected_too_many_peers", self.rejected_too_many_peers),
            ("duplicates", self.duplicates),
            ("self_connects", self.self_connects),
        ])
    }
}

#[derive(Debug, Clone)]
enum ConnState {
    /// A dial emitted, not yet reported.
    Dialing { remote: NodeId, deadline: Time },
    /// In the RLPx handshake or Hello; `remote` is known for outbound connections, `ip` (as
    /// [`ip_group`]) for inbound ones when the owner told it; `order` counts admissions, so the
    /// smallest is the oldest.
    Handshaking {
        direction: Direction,
        remote: Option<NodeId>,
        ip: Option<IpAddr>,
        order: u64,
    },
    /// Ended by us (lost a duplicate contest); its close is still to come.
    Closing,
    /// Session established with a proven key.
    Established {
        direction: Direction,
        remote: NodeId,
        since: Time,
    },
}

#[derive(Debug, Clone)]
struct StaticPeer {
    enode: Enode,
    /// Delay before the next attempt after the next failure.
    backoff_ms: u64,
    /// Earliest time of the next dial when not connected.
    next_attempt: Time,
}

/// The peer manager. See the module docs for the contract.
#[derive(Debug)]
pub struct Peers {
    config: Config,
    local: NodeId,
    conns: BTreeMap<ConnId, ConnState>,
    statics: BTreeMap<NodeId, StaticPeer>,
    next_dial_id: ConnId,
    /// The next [`ConnState::Handshaking::order`].
    next_order: u64,
    actions: VecDeque<Action>,
    stats: PeerStats,
}

impl Peers {
    /// A manager for the node with key `local`.
    pub fn new(config: Config, local: NodeId) -> Self {
        Peers {
            config,
            local,
            conns: BTreeMap::new(),
            statics: BTreeMap::new(),
            next_dial_id: DIAL_CONN_ID_BASE,
            next_order: 0,
            actions: VecDeque::new(),
            stats: PeerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// Established peers: `(conn, remote key, direction)`, by connection id.
    pub fn established(&self) -> Vec<(ConnId, NodeId, Direction)> {
        self.conns
            .iter()
            .filter_map(|(c, s)| match s {
                ConnState::Established {
                    direction, remote, ..
                } => Some((*c, *remote, *direction)),
                _ => None,
            })
            .collect()
    }

    /// Static peers, by key.
    pub fn static_peers(&self) -> Vec<Enode> {
        self.statics.values().map(|s| s.enode).collect()
    }

    /// Connections in the handshake (dials not yet connected excluded).
    pub fn pending_handshakes(&self) -> usize {
        self.conns
            .values()
            .filter(|s| matches!(s, ConnState::Handshaking { .. }))
            .count()
    }

    /// Connections in the handshake in one direction.
    pub fn pending_handshakes_in(&self, direction: Direction) -> usize {
        self.conns
            .values()
            .filter(|s| matches!(s, ConnState::Handshaking { direction: d, .. } if *d == direction))
            .count()
    }

    /// Adds (or updates the address of) a static peer; it is dialed at once if not connected.
    pub fn add_static(&mut self, now: Time, enode: Enode) -> Result<(), PeersError> {
        if enode.public_key == self.local {
            return Err(PeersError::SelfDial);
        }
        if let Some(existing) = self.statics.get_mut(&enode.public_key) {
            existing.enode = enode;
        } else {
            if self.statics.len() >= self.config.max_static_peers {
                return Err(PeersError::TooManyStaticPeers {
                    max: self.config.max_static_peers,
                });
            }
            self.statics.insert(
                enode.public_key,
                StaticPeer {
                    enode,
                    backoff_ms: self.config.redial_initial_backoff_ms,
                    next_attempt: now,
                },
            );
        }
        self.dial_due(now);
        Ok(())
    }

    /// Removes a static peer (an existing connection to it stays). Returns whether it was one.
    pub fn remove_static(&mut self, key: &NodeId) -> bool {
        self.statics.remove(key).is_some()
    }

    /// A new inbound connection from `ip` (`None`: unknown, not bounded per address).
    /// `connections_full`: the owner already holds all the connections it may, so it keeps
    /// this one only if a pending inbound handshake makes room. On `Accept` an older pending
    /// handshake may have been evicted ([`Action::Disconnect`]).
    pub fn handle_inbound(
        &mut self,
        _now: Time,
        conn: ConnId,
        ip: Option<IpAddr>,
        connections_full: bool,
    ) -> Result<InboundVerdict, PeersError> {
        if conn >= DIAL_CONN_ID_BASE {
            return Err(PeersError::UnknownDial(conn));
        }
        if self.conns.contains_key(&conn) {
            return Err(PeersError::DuplicateConnection(conn));
        }
        let ip = ip.map(ip_group);
        // First the per-address bound: an address over its share must not evict others.
        if let Some(ip) = ip {
            let from_ip = self
                .conns
                .values()
                .filter(|s| matches!(s, ConnState::Handshaking { ip: Some(i), .. } if *i == ip))
                .count();
            if from_ip >= self.config.max_pending_handshakes_per_ip {
                self.stats.rejected_pending_per_ip += 1;
                return Ok(InboundVerdict::Refuse(InboundRefusal::PendingPerIpLimit));
            }
        }
        let table_full =
            self.pending_handshakes_in(Direction::Inbound) >= self.config.max_pending_handshakes;
        if table_full || connections_full {
            match self.evict_oldest_pending_inbound() {
                Some(_) if table_full => self.stats.evicted_pending_limit += 1,
                Some(_) => self.stats.evicted_connection_limit += 1,
                None if table_full => {
                    self.stats.rejected_pending_limit += 1;
                    return Ok(InboundVerdict::Refuse(InboundRefusal::PendingLimit));
                }
                None => {
                    self.stats.rejected_connection_limit += 1;
                    return Ok(InboundVerdict::Refuse(InboundRefusal::ConnectionLimit));
                }
            }
        }
        self.insert_handshaking(conn, Direction::Inbound, None, ip);
        Ok(InboundVerdict::Accept)
    }

    /// Ends the pending inbound handshake admitted first (its slot is free at once; its close
    /// comes later). Returns it, or `None` if no inbound handshake is pending.
    fn evict_oldest_pending_inbound(&mut self) -> Option<ConnId> {
        let (conn, _) = self
            .conns
            .iter()
            .filter_map(|(c, s)| match s {
                ConnState::Handshaking {
                    direction: Direction::Inbound,
                    order,
                    ..
                } => Some((*c, *order)),
                _ => None,
            })
            .min_by_key(|(_, order)| *order)?;
        self.conns.insert(conn, ConnState::Closing);
        self.actions.push_back(Action::Disconnect {
            conn,
            reason: DisconnectReason::TooManyPeers,
        });
        Some(conn)
    }

    fn insert_handshaking(
        &mut self,
        conn: ConnId,
        direction: Direction,
        remote: Option<NodeId>,
        ip: Option<IpAddr>,
    ) {
        let order = self.next_order;
        self.next_order = self.next_order.saturating_add(1);
        self.conns.insert(
            conn,
            ConnState::Handshaking {
                direction,
                remote,
                ip,
                order,
            },
        );
    }

    /// An outbound connection is up: one of our dials (id from [`DIAL_CONN_ID_BASE`]) or one
    /// the driver opened itself.
    pub fn handle_outbound(
        &mut self,
        _now: Time,
        conn: ConnId,
        remote: &NodeId,
    ) -> Result<Admission, PeersError> {
        if *remote == self.local {
            return Err(PeersError::SelfDial);
        }
        match self.conns.get(&conn) {
            Some(ConnState::Dialing { remote: dialed, .. }) => {
                if dialed != remote {
                    return Err(PeersError::DialKeyMismatch(conn));
                }
            }
            Some(_) => return Err(PeersError::DuplicateConnection(conn)),
            None if conn >= DIAL_CONN_ID_BASE => return Err(PeersError::UnknownDial(conn)),
            None => {
                // The driver dialed on its own; it chose to spend the work. Inbound handshakes
                // do not count: they cannot keep our own dials out.
                if self.pending_handshakes_in(Direction::Outbound)
                    >= self.config.max_pending_handshakes
                {
                    self.stats.rejected_pending_limit += 1;
                    return Ok(Admission::Reject(DisconnectReason::TooManyPeers));
                }
            }
        }
        self.insert_handshaking(conn, Direction::Outbound, Some(*remote), None);
        Ok(Admission::Accept)
    }

    /// One of our dials could not connect.
    pub fn handle_dial_failed(&mut self, now: Time, conn: ConnId) -> Result<(), PeersError> {
        match self.conns.get(&conn) {
            Some(ConnState::Dialing { remote, .. }) => {
                let remote = *remote;
                self.conns.remove(&conn);
                self.stats.dials_failed += 1;
                self.schedule_redial(now, &remote, None);
                Ok(())
            }
            _ => Err(PeersError::UnknownDial(conn)),
        }
    }

    /// A session reached `Established` with the proven remote key. On `Reject` the owner ends
    /// the session with the reason; on `Accept` another connection may have lost a duplicate
    /// contest (see [`Action::Disconnect`]).
    pub fn handle_established(&mut self, now: Time, conn: ConnId, remote: &NodeId) -> Admission {
        let direction = match self.conns.get(&conn) {
            Some(ConnState::Handshaking { direction, .. }) => *direction,
            // Unknown to us (should not happen): judge it as inbound.
            _ => Direction::Inbound,
        };
        if *remote == self.local {
            self.stats.self_connects += 1;
            self.conns.remove(&conn);
            return Admission::Reject(DisconnectReason::SelfConnect);
        }
        // Duplicate contest against an established session with the same key.
        let existing = self.conns.iter().find_map(|(c, s)| match s {
            ConnState::Established {
                direction: d,
                remote: r,
                ..
            } if r == remote && *c != conn => Some((*c, *d)),
            _ => None,
        });
        if let Some((old, old_direction)) = existing {
            self.stats.duplicates += 1;
            let keep_new = old_direction != direction && {
                // Keep the connection dialed by the smaller key.
                let we_are_smaller = self.local < *remote;
                (direction == Direction::Outbound) == we_are_smaller
            };
            if !keep_new {
                self.conns.remove(&conn);
                return Admission::Reject(DisconnectReason::AlreadyConnected);
            }
            self.actions.push_back(Action::Disconnect {
                conn: old,
                reason: DisconnectReason::AlreadyConnected,
            });
            // The old one stops counting now; its close arrives later.
            self.conns.insert(old, ConnState::Closing);
        } else if !self.statics.contains_key(remote) {
            let (count, max) = match direction {
                Direction::Inbound => (self.count(Direction::Inbound), self.config.max_inbound),
                Direction::Outbound => (self.count(Direction::Outbound), self.config.max_outbound),
            };
            if count >= max {
                self.stats.rejected_too_many_peers += 1;
                self.conns.remove(&conn);
                return Admission::Reject(DisconnectReason::TooManyPeers);
            }
        }
        self.conns.insert(
            conn,
            ConnState::Established {
                direction,
                remote: *remote,
                since: now,
            },
        );
        Admission::Accept
    }

    /// A connection ended (session over or socket closed); unknown ids are ignored.
    pub fn handle_closed(&mut self, now: Time, conn: ConnId) {
        let Some(state) = self.conns.remove(&conn) else {
            return;
        };
        match state {
            ConnState::Established { remote, since, .. } => {
                self.schedule_redial(now, &remote, Some(since))
            }
            ConnState::Dialing { remote, .. }
            | ConnState::Handshaking {
                remote: Some(remote),
                ..
            } => self.schedule_redial(now, &remote, None),
            ConnState::Handshaking { remote: None, .. } | ConnState::Closing => {}
        }
    }

    /// Expires dials and emits due redials. Idempotent.
    pub fn handle_timeout(&mut self, now: Time) {
        let expired: Vec<(ConnId, NodeId)> = self
            .conns
            .iter()
            .filter_map(|(c, s)| match s {
                ConnState::Dialing { remote, deadline } if now >= *deadline => Some((*c, *remote)),
                _ => None,
            })
            .collect();
        for (conn, remote) in expired {
            self.conns.remove(&conn);
            self.stats.dial_timeouts += 1;
            self.schedule_redial(now, &remote, None);
        }
        self.dial_due(now);
    }

    /// The next deadline: a dial timeout or a static peer's next attempt.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let dials = self.conns.values().fold(None, |acc, s| match s {
            ConnState::Dialing { deadline, .. } => earliest(acc, Some(*deadline)),
            _ => acc,
        });
        self.statics
            .iter()
            .filter(|(key, _)| !self.has_connection_to(key))
            .fold(dials, |acc, (_, s)| earliest(acc, Some(s.next_attempt)))
    }

    /// The next action.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn count(&self, direction: Direction) -> usize {
        self.conns
            .values()
            .filter(|s| {
                matches!(s, ConnState::Established { direction: d, remote, .. }
                    if *d == direction && !self.statics.contains_key(remote))
            })
            .count()
    }

    /// A dial, an outbound handshake or a session with `key`. (Inbound handshakes have no
    /// proven key yet; a duplicate they turn into is resolved when established.)
    fn has_connection_to(&self, key: &NodeId) -> bool {
        self.conns.values().any(|s| match s {
            ConnState::Dialing { remote, .. }
            | ConnState::Established { remote, .. }
            | ConnState::Handshaking {
                remote: Some(remote),
                ..
            } => remote == key,
            ConnState::Handshaking { remote: None, .. } | ConnState::Closing => false,
        })
    }

    fn schedule_redial(&mut self, now: Time, key: &NodeId, connected_since: Option<Time>) {
        let (initial, max, reset) = (
            self.config.redial_initial_backoff_ms,
            self.config.redial_max_backoff_ms,
            self.config.backoff_reset_after_ms,
        );
        let Some(peer) = self.statics.get_mut(key) else {
            return;
        };
        if connected_since.is_some_and(|since| now.millis_since(since) >= reset) {
            peer.backoff_ms = initial;
        }
        peer.next_attempt = now.plus_millis(peer.backoff_ms);
        peer.backoff_ms = peer.backoff_ms.saturating_mul(2).min(max).max(initial);
    }

    fn dial_due(&mut self, now: Time) {
        let due: Vec<NodeId> = self
            .statics
            .iter()
            .filter(|(key, s)| now >= s.next_attempt && !self.has_connection_to(key))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            let Some(peer) = self.statics.get(&key) else {
                continue;
            };
            let enode = peer.enode;
            let conn = self.next_dial_id;
            self.next_dial_id = self.next_dial_id.saturating_add(1);
            self.conns.insert(
                conn,
                ConnState::Dialing {
                    remote: key,
                    deadline: now.plus_millis(self.config.dial_timeout_ms),
                },
            );
            self.stats.dials += 1;
            self.actions.push_back(Action::Dial { conn, enode });
        }
    }
}

#[cfg(test)]
mod tests;
