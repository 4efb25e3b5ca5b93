use super::*;
use std::net::SocketAddr;

const T0: Time = Time(1_570_000_000_000);

fn id(b: u8) -> NodeId {
    [b; 64]
}

fn enode(b: u8) -> Enode {
    Enode::new(id(b), SocketAddr::from(([10, 0, 0, b], 30303)))
}

fn drain(p: &mut Peers) -> Vec<Action> {
    std::iter::from_fn(|| p.poll_action()).collect()
}

fn small() -> Config {
    Config {
        max_inbound: 2,
        max_outbound: 1,
        max_pending_handshakes: 3,
        ..Config::default()
    }
}

#[test]
fn inbound_limits() {
    let mut p = Peers::new(small(), id(0x50));
    for c in 1..=3 {
        assert_eq!(
            p.handle_inbound(T0, c, None, false),
            Ok(InboundVerdict::Accept)
        );
    }
    assert_eq!(p.handle_established(T0, 1, &id(1)), Admission::Accept);
    assert_eq!(p.handle_established(T0, 2, &id(2)), Admission::Accept);
    // Inbound limit 2 reached: the third is refused once its key is known.
    assert_eq!(
        p.handle_established(T0, 3, &id(3)),
        Admission::Reject(DisconnectReason::TooManyPeers)
    );
    assert_eq!(p.stats().rejected_too_many_peers, 1);
    assert_eq!(p.established().len(), 2);
    // Closing one frees a slot.
    p.handle_closed(T0, 1);
    assert_eq!(
        p.handle_inbound(T0, 5, None, false),
        Ok(InboundVerdict::Accept)
    );
    assert_eq!(p.handle_established(T0, 5, &id(5)), Admission::Accept);
    // Misuse.
    assert_eq!(
        p.handle_inbound(T0, 5, None, false),
        Err(PeersError::DuplicateConnection(5))
    );
    assert_eq!(
        p.handle_inbound(T0, DIAL_CONN_ID_BASE, None, false),
        Err(PeersError::UnknownDial(DIAL_CONN_ID_BASE))
    );
}

#[test]
fn outbound_limit_is_separate() {
    let mut p = Peers::new(small(), id(0x50));
    assert_eq!(p.handle_outbound(T0, 1, &id(1)), Ok(Admission::Accept));
    assert_eq!(p.handle_outbound(T0, 2, &id(2)), Ok(Admission::Accept));
    assert_eq!(p.handle_established(T0, 1, &id(1)), Admission::Accept);
    assert_eq!(
        p.handle_established(T0, 2, &id(2)),
        Admission::Reject(DisconnectReason::TooManyPeers)
    );
    // Inbound slots are still free.
    assert_eq!(
        p.handle_inbound(T0, 3, None, false),
        Ok(InboundVerdict::Accept)
    );
    assert_eq!(p.handle_established(T0, 3, &id(3)), Admission::Accept);
}

#[test]
fn self_dial_and_self_connect() {
    let mut p = Peers::new(Config::default(), id(9));
    assert_eq!(p.add_static(T0, enode(9)), Err(PeersError::SelfDial));
    assert_eq!(p.handle_outbound(T0, 1, &id(9)), Err(PeersError::SelfDial));
    assert_eq!(
        p.handle_inbound(T0, 2, None, false),
        Ok(InboundVerdict::Accept)
    );
    assert_eq!(
        p.handle_established(T0, 2, &id(9)),
        Admission::Reject(DisconnectReason::SelfConnect)
    );
    assert_eq!(p.stats().self_connects, 1);
    assert!(drain(&mut p).is_empty());
}

/// Both ends of a simultaneous dial keep the same TCP connection: the one dialed by the
/// smaller key.
#[test]
fn duplicate_contest_agrees_on_both_sides() {
    let (small_key, big_key) = (id(1), id(2));
    // Connection X: small dialed big. Connection Y: big dialed small.
    // On `small`: X is conn 10 (outbound), Y is conn 11 (inbound).
    // On `big`:   X is conn 20 (inbound),  Y is conn 21 (outbound).
    for order in [false, true] {
        let mut s = Peers::new(Config::default(), small_key);
        let mut b = Peers::new(Config::default(), big_key);
        s.handle_outbound(T0, 10, &big_key).unwrap();
        s.handle_inbound(T0, 11, None, false).unwrap();
        b.handle_inbound(T0, 20, None, false).unwrap();
        b.handle_outbound(T0, 21, &small_key).unwrap();
        // Establishment order differs between the runs and between the sides.
        let (s_first, s_second) = if order { (10, 11) } else { (11, 10) };
        let (b_first, b_second) = if order { (21, 20) } else { (20, 21) };
        assert_eq!(
            s.handle_established(T0, s_first, &big_key),
            Admission::Accept
        );
        let s_lost = match s.handle_established(T0, s_second, &big_key) {
            Admission::Accept => {
                assert_eq!(
                    drain(&mut s),
                    vec![Action::Disconnect {
                        conn: s_first,
                        reason: DisconnectReason::AlreadyConnected
                    }]
                );
                Some(s_first)
            }
            Admission::Reject(DisconnectReason::AlreadyConnected) => Some(s_second),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            b.handle_established(T0, b_first, &small_key),
            Admission::Accept
        );
        let b_lost = match b.handle_established(T0, b_second, &small_key) {
            Admission::Accept => {
                drain(&mut b);
                Some(b_first)
            }
            Admission::Reject(DisconnectReason::AlreadyConnected) => Some(b_second),
            other => panic!("{other:?}"),
        };
        // Both dropped connection Y (11 on small, 21 on big) and kept X.
        assert_eq!((s_lost, b_lost), (Some(11), Some(21)), "order {order}");
        assert_eq!(s.established(), vec![(10, big_key, Direction::Outbound)]);
        assert_eq!(b.established(), vec![(20, small_key, Direction::Inbound)]);
    }
}

#[test]
fn duplicate_in_the_same_direction_keeps_the_older() {
    let mut p = Peers::new(Config::default(), id(0x50));
    p.handle_inbound(T0, 1, None, false).unwrap();
    p.handle_inbound(T0, 2, None, false).unwrap();
    assert_eq!(p.handle_established(T0, 1, &id(7)), Admission::Accept);
    assert_eq!(
        p.handle_established(T0, 2, &id(7)),
        Admission::Reject(DisconnectReason::AlreadyConnected)
    );
    assert_eq!(p.stats().duplicates, 1);
    assert!(drain(&mut p).is_empty());
}

#[test]
fn static_peer_is_dialed_and_redialed_with_capped_backoff() {
    let config = Config {
        redial_initial_backoff_ms: 1_000,
        redial_max_backoff_ms: 8_000,
        dial_timeout_ms: 500,
        ..Config::default()
    };
    let mut p = Peers::new(config, id(0x50));
    p.add_static(T0, enode(1)).unwrap();
    let Action::Dial { conn, enode: e } = drain(&mut p).remove(0) else {
        panic!()
    };
    assert_eq!((conn, e), (DIAL_CONN_ID_BASE, enode(1)));
    // Adding it again dials nothing new.
    p.add_static(T0, enode(1)).unwrap();
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.poll_timeout(), Some(T0.plus_millis(500)));
    // Failures: 1 s, 2 s, 4 s, 8 s, 8 s (capped).
    let mut now = T0;
    let mut conn = conn;
    let mut gaps = Vec::new();
    for round in 0..5 {
        if round % 2 == 0 {
            p.handle_dial_failed(now, conn).unwrap();
        } else {
            // A dial the driver never reports times out.
            now = p.poll_timeout().unwrap();
            p.handle_timeout(now);
        }
        let failed_at = now;
        assert!(drain(&mut p).is_empty());
        now = p.poll_timeout().unwrap();
        p.handle_timeout(now);
        p.handle_timeout(now); // idempotent
        let actions = drain(&mut p);
        assert_eq!(actions.len(), 1);
        let Action::Dial { conn: c, .. } = actions[0] else {
            panic!()
        };
        assert!(c > conn);
        conn = c;
        gaps.push(now.millis_since(failed_at));
    }
    assert_eq!(gaps, [1_000, 2_000, 4_000, 8_000, 8_000]);
    assert_eq!(p.stats().dials, 6);
    assert_eq!(p.stats().dial_timeouts, 2);
    assert_eq!(p.stats().dials_failed, 3);

    // Connected: no redial while up; a connection that lasted resets the backoff.
    assert_eq!(p.handle_outbound(now, conn, &id(1)), Ok(Admission::Accept));
    assert_eq!(p.handle_established(now, conn, &id(1)), Admission::Accept);
    assert_eq!(p.poll_timeout(), None);
    let later = now.plus_millis(DEFAULT_BACKOFF_RESET_AFTER_MS);
    p.handle_closed(later, conn);
    assert_eq!(p.poll_timeout(), Some(later.plus_millis(1_000)));
    // A connection that drops quickly keeps growing the backoff.
    p.handle_timeout(later.plus_millis(1_000));
    let Action::Dial { conn, .. } = drain(&mut p).remove(0) else {
        panic!()
    };
    let t = later.plus_millis(1_000);
    p.handle_outbound(t, conn, &id(1)).unwrap();
    p.handle_established(t, conn, &id(1));
    p.handle_closed(t.plus_millis(10), conn);
    assert_eq!(p.poll_timeout(), Some(t.plus_millis(10 + 2_000)));
    // Removed: no more dials.
    assert!(p.remove_static(&id(1)));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn static_peers_bypass_peer_limits_and_are_not_dialed_when_connected_inbound() {
    let mut p = Peers::new(
        Config {
            max_inbound: 0,
            max_outbound: 0,
            ..Config::default()
        },
        id(0x50),
    );
    p.add_static(T0, enode(1)).unwrap();
    let Action::Dial { conn, .. } = drain(&mut p).remove(0) else {
        panic!()
    };
    p.handle_outbound(T0, conn, &id(1)).unwrap();
    assert_eq!(p.handle_established(T0, conn, &id(1)), Admission::Accept);
    // A non-static peer is refused by the zero limits.
    p.handle_inbound(T0, 1, None, false).unwrap();
    assert_eq!(
        p.handle_established(T0, 1, &id(2)),
        Admission::Reject(DisconnectReason::TooManyPeers)
    );
    // Static peer 3 connects to us first: we do not dial it.
    p.handle_inbound(T0, 2, None, false).unwrap();
    p.add_static(T0, enode(3)).unwrap();
    let dial3 = drain(&mut p);
    assert_eq!(dial3.len(), 1, "not known yet: dialed");
    assert_eq!(p.handle_established(T0, 2, &id(3)), Admission::Accept);
    let Action::Dial { conn: c3, .. } = dial3[0] else {
        panic!()
    };
    // Our dial then fails: the inbound connection stands, no redial is scheduled for it.
    p.handle_dial_failed(T0, c3).unwrap();
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn dial_reports_are_checked() {
    let mut p = Peers::new(Config::default(), id(0x50));
    p.add_static(T0, enode(1)).unwrap();
    let Action::Dial { conn, .. } = drain(&mut p).remove(0) else {
        panic!()
    };
    assert_eq!(
        p.handle_outbound(T0, conn, &id(2)),
        Err(PeersError::DialKeyMismatch(conn))
    );
    assert_eq!(
        p.handle_outbound(T0, conn + 1, &id(1)),
        Err(PeersError::UnknownDial(conn + 1))
    );
    assert_eq!(p.handle_dial_failed(T0, 5), Err(PeersError::UnknownDial(5)));
    let mut full = Peers::new(
        Config {
            max_static_peers: 1,
            ..Config::default()
        },
        id(0x50),
    );
    full.add_static(T0, enode(1)).unwrap();
    assert_eq!(
        full.add_static(T0, enode(2)),
        Err(PeersError::TooManyStaticPeers { max: 1 })
    );
}

// ---- Pending handshakes under pressure (issue 16: idle sockets locked a node out) ----

fn v4(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([10, 0, 1, last]))
}

fn v6(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn accept(p: &mut Peers, conn: ConnId, ip: Option<IpAddr>) {
    assert_eq!(
        p.handle_inbound(T0, conn, ip, false),
        Ok(InboundVerdict::Accept),
        "conn {conn}"
    );
}

fn evicted(p: &mut Peers) -> Vec<ConnId> {
    drain(p)
        .into_iter()
        .map(|a| match a {
            Action::Disconnect {
                conn,
                reason: DisconnectReason::TooManyPeers,
            } => conn,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn pending_handshakes_are_bounded_per_address() {
    let mut p = Peers::new(
        Config {
            max_pending_handshakes: 10,
            max_pending_handshakes_per_ip: 2,
            ..Config::default()
        },
        id(0x50),
    );
    accept(&mut p, 1, v4(1));
    accept(&mut p, 2, v4(1));
    let refused = Ok(InboundVerdict::Refuse(InboundRefusal::PendingPerIpLimit));
    assert_eq!(p.handle_inbound(T0, 3, v4(1), false), refused);
    assert_eq!(p.stats().rejected_pending_per_ip, 1);
    // Another address is not affected.
    accept(&mut p, 4, v4(2));
    // IPv6 counts by /64; an IPv4-mapped address as its IPv4 one.
    accept(&mut p, 5, v6("2001:db8::1"));
    accept(&mut p, 6, v6("2001:db8::ffff:2"));
    assert_eq!(p.handle_inbound(T0, 7, v6("2001:db8::3"), false), refused);
    accept(&mut p, 8, v6("2001:db8:0:1::1"));
    accept(&mut p, 9, v6("::ffff:10.0.1.2"));
    assert_eq!(
        p.handle_inbound(T0, 10, v6("::ffff:10.0.1.2"), false),
        refused
    );
    // Unknown addresses are not bounded per address.
    accept(&mut p, 11, None);
    accept(&mut p, 12, None);
    accept(&mut p, 13, None);
    assert_eq!(p.stats().rejected_pending_per_ip, 3);
    // A finished handshake and a closed connection give their address room again.
    assert_eq!(p.handle_established(T0, 1, &id(1)), Admission::Accept);
    accept(&mut p, 14, v4(1));
    p.handle_closed(T0, 2);
    accept(&mut p, 15, v4(1));
    assert_eq!(p.handle_inbound(T0, 16, v4(1), false), refused);
    // The table is full (10): an address over its share is refused, not let evict others.
    assert_eq!(p.pending_handshakes_in(Direction::Inbound), 10);
    assert_eq!(p.stats().evicted_pending_limit, 0);
    assert!(drain(&mut p).is_empty());
    assert_eq!(p.stats().rejected_pending_per_ip, 4);
    assert_eq!(p.stats().rejected_pending_limit, 0);
}

#[test]
fn full_pending_table_evicts_the_oldest_inbound_handshake() {
    let mut p = Peers::new(
        Config {
            max_pending_handshakes: 3,
            ..Config::default()
        },
        id(0x50),
    );
    // Admission order, not connection id order, says which is oldest.
    accept(&mut p, 30, v4(1));
    accept(&mut p, 20, v4(2));
    accept(&mut p, 10, v4(3));
    assert!(drain(&mut p).is_empty());
    accept(&mut p, 5, v4(4));
    assert_eq!(evicted(&mut p), vec![30]);
    assert_eq!(p.stats().evicted_pending_limit, 1);
    assert_eq!(p.pending_handshakes_in(Direction::Inbound), 3);
    accept(&mut p, 6, v4(5));
    assert_eq!(evicted(&mut p), vec![20]);
    // The evicted one's close comes later and changes nothing; it never gets established.
    p.handle_closed(T0, 30);
    assert_eq!(p.pending_handshakes_in(Direction::Inbound), 3);
    // The newcomer finishes its handshake.
    assert_eq!(p.handle_established(T0, 5, &id(5)), Admission::Accept);
    accept(&mut p, 7, v4(6));
    assert!(drain(&mut p).is_empty(), "a slot was free");
    accept(&mut p, 8, v4(7));
    assert_eq!(evicted(&mut p), vec![10]);
    assert_eq!(p.stats().evicted_pending_limit, 3);
    assert_eq!(p.stats().rejected_pending_limit, 0);
    // With no room at all nothing can be evicted: refused.
    let mut none = Peers::new(
        Config {
            max_pending_handshakes: 0,
            ..Config::default()
        },
        id(0x50),
    );
    assert_eq!(
        none.handle_inbound(T0, 1, v4(1), false),
        Ok(InboundVerdict::Refuse(InboundRefusal::PendingLimit))
    );
    assert_eq!(none.stats().rejected_pending_limit, 1);
}

#[test]
fn eviction_spares_established_sessions_and_outbound_connections() {
    let mut p = Peers::new(
        Config {
            max_pending_handshakes: 2,
            ..Config::default()
        },
        id(0x50),
    );
    // An established inbound peer, our dial to a static peer still in its handshake, and a
    // driver-initiated outbound connection in its handshake.
    accept(&mut p, 1, v4(1));
    assert_eq!(p.handle_established(T0, 1, &id(1)), Admission::Accept);
    p.add_static(T0, enode(2)).unwrap();
    let Action::Dial { conn: dial, .. } = drain(&mut p).remove(0) else {
        panic!()
    };
    assert_eq!(p.handle_outbound(T0, dial, &id(2)), Ok(Admission::Accept));
    assert_eq!(p.handle_outbound(T0, 3, &id(3)), Ok(Admission::Accept));
    // Outbound handshakes do not take inbound slots: two inbound ones fit.
    accept(&mut p, 4, v4(4));
    accept(&mut p, 5, v4(5));
    assert!(drain(&mut p).is_empty());
    // A stream of newcomers only ever evicts pending inbound handshakes.
    let mut gone = Vec::new();
    for conn in 10..20 {
        accept(&mut p, conn, v4(u8::try_from(conn).unwrap()));
        gone.extend(evicted(&mut p));
    }
    assert_eq!(gone, vec![4, 5, 10, 11, 12, 13, 14, 15, 16, 17]);
    assert_eq!(p.handle_established(T0, dial, &id(2)), Admission::Accept);
    assert_eq!(p.handle_established(T0, 3, &id(3)), Admission::Accept);
    // Inbound pressure does not refuse a driver-initiated outbound connection either.
    assert_eq!(p.pending_handshakes_in(Direction::Inbound), 2);
    assert_eq!(p.handle_outbound(T0, 30, &id(30)), Ok(Admission::Accept));
    assert!(drain(&mut p).is_empty());
    let established: Vec<ConnId> = p.established().iter().map(|(c, _, _)| *c).collect();
    assert_eq!(established, vec![1, 3, dial]);
}

#[test]
fn owner_at_its_connection_limit_evicts_a_pending_inbound_handshake() {
    let mut p = Peers::new(Config::default(), id(0x50));
    accept(&mut p, 1, v4(1));
    assert_eq!(p.handle_established(T0, 1, &id(1)), Admission::Accept);
    // Full, and only an established session: refused, the session stays.
    assert_eq!(
        p.handle_inbound(T0, 2, v4(2), true),
        Ok(InboundVerdict::Refuse(InboundRefusal::ConnectionLimit))
    );
    assert_eq!(p.stats().rejected_connection_limit, 1);
    accept(&mut p, 3, v4(3));
    accept(&mut p, 4, v4(4));
    assert_eq!(
        p.handle_inbound(T0, 5, v4(5), true),
        Ok(InboundVerdict::Accept)
    );
    assert_eq!(evicted(&mut p), vec![3]);
    assert_eq!(p.stats().evicted_connection_limit, 1);
    assert_eq!(p.stats().evicted_pending_limit, 0);
    // The per-address bound comes first even then.
    let mut q = Peers::new(
        Config {
            max_pending_handshakes_per_ip: 1,
            ..Config::default()
        },
        id(0x50),
    );
    accept(&mut q, 1, v4(1));
    assert_eq!(
        q.handle_inbound(T0, 2, v4(1), true),
        Ok(InboundVerdict::Refuse(InboundRefusal::PendingPerIpLimit))
    );
    assert!(drain(&mut q).is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Inbound { ip: u8, connections_full: bool },
    Outbound,
    Establish(usize),
    Close(usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u8..6, proptest::bool::weighted(0.2))
            .prop_map(|(ip, connections_full)| Op::Inbound { ip, connections_full }),
        1 => Just(Op::Outbound),
        2 => any::<usize>().prop_map(Op::Establish),
        2 => any::<usize>().prop_map(Op::Close),
    ]
}

proptest::proptest! {
    /// Whatever arrives: inbound pending handshakes stay within both bounds, only pending
    /// inbound handshakes are ever evicted, and every new inbound connection is accepted or
    /// counted as refused.
    #[test]
    fn pending_bounds_hold_and_only_pending_inbound_is_evicted(
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let (max_pending, per_ip) = (5, 2);
        let mut p = Peers::new(
            Config {
                max_pending_handshakes: max_pending,
                max_pending_handshakes_per_ip: per_ip,
                ..Config::default()
            },
            id(0x50),
        );
        // Our own view: connection → (inbound, ip, established).
        let mut live: BTreeMap<ConnId, (bool, u8, bool)> = BTreeMap::new();
        let mut next: ConnId = 1;
        let mut inbound_calls = 0u64;
        let mut accepted = 0u64;
        let mut outbound_refused = 0u64;
        for op in ops {
            match op {
                Op::Inbound { ip, connections_full } => {
                    let conn = next;
                    next += 1;
                    inbound_calls += 1;
                    let verdict = p
                        .handle_inbound(T0, conn, v4(ip), connections_full)
                        .unwrap();
                    if verdict == InboundVerdict::Accept {
                        accepted += 1;
                        live.insert(conn, (true, ip, false));
                    }
                }
                Op::Outbound => {
                    let conn = next;
                    next += 1;
                    let remote = id(u8::try_from(conn % 200).unwrap() + 1);
                    match p.handle_outbound(T0, conn, &remote) {
                        Ok(Admission::Accept) => {
                            live.insert(conn, (false, 0, false));
                        }
                        Ok(Admission::Reject(_)) => outbound_refused += 1,
                        Err(_) => {}
                    }
                }
                Op::Establish(i) | Op::Close(i) if live.is_empty() => {
                    let _ = i;
                }
                Op::Establish(i) => {
                    let conn = *live.keys().nth(i % live.len()).unwrap();
                    let entry = live.get_mut(&conn).unwrap();
                    if !entry.2 {
                        // Distinct keys per connection: no duplicate contests here.
                        let key = {
                            let mut k = [0u8; 64];
                            k[..8].copy_from_slice(&conn.to_be_bytes());
                            k[63] = 1;
                            k
                        };
                        if p.handle_established(T0, conn, &key) == Admission::Accept {
                            entry.2 = true;
                        } else {
                            live.remove(&conn);
                        }
                    }
                }
                Op::Close(i) => {
                    let conn = *live.keys().nth(i % live.len()).unwrap();
                    live.remove(&conn);
                    p.handle_closed(T0, conn);
                }
            }
            for action in drain(&mut p) {
                let Action::Disconnect { conn, reason } = action else {
                    panic!("unexpected {action:?}");
                };
                proptest::prop_assert_eq!(reason, DisconnectReason::TooManyPeers);
                let (inbound, _, established) = live.remove(&conn).expect("a live connection");
                proptest::prop_assert!(inbound && !established, "evicted {}", conn);
                p.handle_closed(T0, conn);
            }
            let pending: Vec<u8> = live
                .values()
                .filter(|(inbound, _, established)| *inbound && !*established)
                .map(|(_, ip, _)| *ip)
                .collect();
            proptest::prop_assert_eq!(p.pending_handshakes_in(Direction::Inbound), pending.len());
            proptest::prop_assert!(pending.len() <= max_pending);
            for ip in 0..6u8 {
                proptest::prop_assert!(pending.iter().filter(|i| **i == ip).count() <= per_ip);
            }
        }
        let s = p.stats();
        proptest::prop_assert_eq!(
            inbound_calls + outbound_refused,
            accepted + s.rejected_pending_per_ip + s.rejected_pending_limit
                + s.rejected_connection_limit
        );
    }
}
