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
fn inbound_limits_and_pending_limit() {
    let mut p = Peers::new(small(), id(0x50));
    for c in 1..=3 {
        assert_eq!(p.handle_inbound(T0, c), Ok(Admission::Accept));
    }
    // A fourth handshake in flight is refused before any work.
    assert_eq!(
        p.handle_inbound(T0, 4),
        Ok(Admission::Reject(DisconnectReason::TooManyPeers))
    );
    assert_eq!(p.stats().rejected_pending_limit, 1);
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
    assert_eq!(p.handle_inbound(T0, 5), Ok(Admission::Accept));
    assert_eq!(p.handle_established(T0, 5, &id(5)), Admission::Accept);
    // Misuse.
    assert_eq!(
        p.handle_inbound(T0, 5),
        Err(PeersError::DuplicateConnection(5))
    );
    assert_eq!(
        p.handle_inbound(T0, DIAL_CONN_ID_BASE),
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
    assert_eq!(p.handle_inbound(T0, 3), Ok(Admission::Accept));
    assert_eq!(p.handle_established(T0, 3, &id(3)), Admission::Accept);
}

#[test]
fn self_dial_and_self_connect() {
    let mut p = Peers::new(Config::default(), id(9));
    assert_eq!(p.add_static(T0, enode(9)), Err(PeersError::SelfDial));
    assert_eq!(p.handle_outbound(T0, 1, &id(9)), Err(PeersError::SelfDial));
    assert_eq!(p.handle_inbound(T0, 2), Ok(Admission::Accept));
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
        s.handle_inbound(T0, 11).unwrap();
        b.handle_inbound(T0, 20).unwrap();
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
    p.handle_inbound(T0, 1).unwrap();
    p.handle_inbound(T0, 2).unwrap();
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
    p.handle_inbound(T0, 1).unwrap();
    assert_eq!(
        p.handle_established(T0, 1, &id(2)),
        Admission::Reject(DisconnectReason::TooManyPeers)
    );
    // Static peer 3 connects to us first: we do not dial it.
    p.handle_inbound(T0, 2).unwrap();
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
