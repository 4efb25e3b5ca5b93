//! Early broadcast: a full batch, or one followed by a quiet input, does not wait for the end
//! of the cycle.

use super::*;

/// Posts envelopes of about `size` bytes until `poll_timeout` says a broadcast is due now;
/// returns how many were posted.
fn post_until_due(w: &mut Whisper, now: Time, size: usize, max: usize) -> usize {
    for i in 0..max {
        let p = MessageParams {
            payload: vec![i as u8; size],
            pow_target: 0.0,
            ..chat_params("batch", b"")
        };
        w.post(now, p, &[7; 32]).unwrap();
        if w.poll_timeout() == Some(now) {
            return i + 1;
        }
    }
    max
}

fn messages_sent(w: &mut Whisper) -> (usize, usize) {
    let (mut packets, mut envelopes) = (0, 0);
    while let Some(a) = w.poll_action() {
        if let Action::Send {
            code: codes::MESSAGES,
            payload,
            ..
        } = a
        {
            packets += 1;
            envelopes += decode_messages(&payload).unwrap().len();
        }
    }
    (packets, envelopes)
}

#[test]
fn a_full_batch_is_broadcast_at_once_and_a_small_one_waits_for_the_cycle() {
    let t0 = Time(T0_MS);
    let no_quiet = Config {
        min_pow: 0.0,
        quiet_broadcast_ms: 0,
        ..Config::default()
    };
    let mut w = with_peer(no_quiet.clone(), None);
    // One small post: the broadcast waits for the cycle, as Go's `transmissionCycle`.
    let p = MessageParams {
        payload: vec![1; 100],
        pow_target: 0.0,
        ..chat_params("batch", b"")
    };
    w.post(t0, p, &[7; 32]).unwrap();
    assert_eq!(
        w.poll_timeout(),
        Some(t0.plus_millis(BROADCAST_INTERVAL_MS))
    );
    // Enough new bytes for a batch: due now.
    let posted = 1 + post_until_due(&mut w, t0, 1000, 200);
    assert!(posted < 200, "never due early");
    // Each envelope is the 1,000 B payload plus < 300 B of padding, signature and framing.
    assert!(posted * 1300 >= EARLY_BROADCAST_BYTES, "{posted} posts");
    assert!(
        posted * 1000 <= EARLY_BROADCAST_BYTES + 2000,
        "{posted} posts"
    );
    w.handle_timeout(t0);
    assert_eq!(messages_sent(&mut w), (1, posted));
    // Nothing new: no broadcast is due now.
    assert!(w.poll_timeout().is_none_or(|t| t > t0));

    // Off: the same traffic waits for the cycle.
    let mut w = with_peer(
        Config {
            early_broadcast_bytes: 0,
            ..no_quiet
        },
        None,
    );
    assert_eq!(post_until_due(&mut w, t0, 1000, 100), 100);
    assert_eq!(
        w.poll_timeout(),
        Some(t0.plus_millis(BROADCAST_INTERVAL_MS))
    );
}

#[test]
fn a_peer_packet_budget_holds_across_early_broadcasts_and_what_it_holds_back_still_goes() {
    let t0 = Time(T0_MS);
    let limits = RateLimits {
        ip_limit: 0,
        peer_id_limit: 1,
        topic_limit: 0,
    };
    let mut w = with_peer(
        Config {
            min_pow: 0.0,
            max_message_size: 4096,
            early_broadcast_bytes: 1500,
            ..Config::default()
        },
        Some(limits),
    );
    // Six envelopes of ~1 kB: every second one makes a broadcast due at once, but the peer
    // takes one packet (of at most 4 kB) per cycle.
    let mut sent = 0;
    let mut now = t0;
    for round in 0..3 {
        assert_eq!(post_until_due(&mut w, now, 900, 10), 2, "round {round}");
        w.handle_timeout(now);
        let (packets, envelopes) = messages_sent(&mut w);
        assert!(packets <= 1);
        sent += envelopes;
        now = now.plus_millis(10);
    }
    // No new traffic from here on: the held-back envelopes go at the following cycles.
    for _ in 0..10 {
        let Some(at) = w.poll_timeout() else { break };
        now = now.max(at);
        w.handle_timeout(now);
        let (packets, envelopes) = messages_sent(&mut w);
        assert!(packets <= 1, "one packet per cycle");
        sent += envelopes;
        if sent == 6 {
            break;
        }
    }
    assert_eq!(sent, 6, "everything held back was sent without new traffic");
}

fn post_small(w: &mut Whisper, now: Time, i: u8) {
    let p = MessageParams {
        payload: vec![i; 100],
        pow_target: 0.0,
        ..chat_params("quiet", b"")
    };
    w.post(now, p, &[7; 32]).unwrap();
}

#[test]
fn a_batch_goes_once_input_is_quiet_and_steady_input_still_waits_for_the_cycle() {
    let t0 = Time(T0_MS);
    let mut w = with_peer(
        Config {
            min_pow: 0.0,
            ..Config::default()
        },
        None,
    );
    // A lone post goes after the quiet time, not at the end of the cycle.
    post_small(&mut w, t0, 1);
    let quiet_end = t0.plus_millis(QUIET_BROADCAST_MS);
    assert_eq!(w.poll_timeout(), Some(quiet_end));
    w.handle_timeout(Time(quiet_end.as_millis() - 1));
    assert_eq!(messages_sent(&mut w), (0, 0));
    w.handle_timeout(quiet_end);
    assert_eq!(messages_sent(&mut w), (1, 1));

    // Posts closer together than the quiet time: each pushes the quiet end later, and the
    // cycle started by the first one ends the batch.
    let start = quiet_end.plus_millis(1_000);
    let step = QUIET_BROADCAST_MS / 2;
    let mut now = start;
    let mut posted = 0u8;
    while now < start.plus_millis(BROADCAST_INTERVAL_MS) {
        post_small(&mut w, now, posted);
        posted += 1;
        w.handle_timeout(now);
        assert_eq!(messages_sent(&mut w), (0, 0), "sent before the cycle ended");
        now = now.plus_millis(step);
    }
    assert_eq!(
        w.poll_timeout(),
        Some(start.plus_millis(BROADCAST_INTERVAL_MS))
    );
    w.handle_timeout(start.plus_millis(BROADCAST_INTERVAL_MS));
    assert_eq!(messages_sent(&mut w), (1, usize::from(posted)));
    // Nothing new: nothing due.
    assert_eq!(w.poll_timeout().filter(|t| *t <= now), None);
}
