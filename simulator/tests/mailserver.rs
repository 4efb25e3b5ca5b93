//! Issue 4's simulator scenario: nodes offline while messages were sent get them from a
//! mailserver after they come back (`scenarios/mailserver-offline.toml`), and miss them
//! without it. Real nodes, fixed seeds, small sizes.

use hush_sim::cli::{check_same, with_param, BUNDLED};
use hush_sim::run::{run_scenario_full, spawn_node, RunOutput};
use hush_sim::scenario::{ChurnSpec, CrashSpec, CrashState, NodeSelect, OfflineSpec, Scenario};

fn bundled(name: &str) -> Scenario {
    let text = BUNDLED.iter().find(|(n, _)| *n == name).unwrap().1;
    Scenario::from_toml_str(text).unwrap()
}

fn run(s: &Scenario) -> RunOutput {
    run_scenario_full(s, s.seed.unwrap_or(1), spawn_node, &mut |_| {}).unwrap()
}

/// Invariants every run must keep, with or without history.
fn sane(o: &RunOutput) {
    let s = &o.summary;
    assert_eq!(s.unknown_deliveries, 0, "{s:#?}");
    assert_eq!(s.duplicate_deliveries, 0, "{s:#?}");
    if s.restarts == 0 {
        // A restarted node has no record of what it sent before (persisted chat messages
        // cannot be loaded back into the node yet), so history may hand it its own messages.
        assert_eq!(s.self_deliveries, 0, "{s:#?}");
    }
    assert_eq!(s.host_errors, 0);
    assert_eq!(s.invalid_actions, 0);
    assert!(!s.hit_event_cap);
    assert_eq!(s.deliveries_live + s.deliveries_history, s.deliveries);
    let received: u64 = o.messages.iter().map(|m| m.received).sum();
    assert_eq!(received, s.deliveries);
    assert!(o.messages.iter().all(|m| m.received <= m.expected));
}

/// A smaller copy of the bundled scenario for the property tests.
fn small() -> Scenario {
    Scenario {
        nodes: 16,
        offline: vec![OfflineSpec {
            at_ms: 10_500,
            duration_ms: 20_000,
            select: NodeSelect {
                count: Some(5),
                ..Default::default()
            },
        }],
        ..bundled("mailserver-offline")
    }
}

#[test]
fn bundled_scenario_delivers_everything_through_the_mailserver_and_less_without() {
    let s = bundled("mailserver-offline");
    assert_eq!(s.nodes, 30);
    let with = run(&s);
    sane(&with);
    let w = &with.summary;
    assert_eq!(w.roles.get("mailserver"), Some(&1));
    assert_eq!(w.members, 29, "the mailserver is no chat member");
    assert_eq!(w.delivery_ratio, 1.0, "{w:#?}");
    assert!(w.messages_sent >= 20, "{w:#?}");
    // Every message reached every member, including those offline when it was sent, and what
    // gossip could not give them came in history responses.
    assert!(with.messages.iter().all(|m| m.received == m.expected));
    assert!(w.deliveries_history > 0, "{w:#?}");
    assert!(w.delivery_ratio_live < 1.0, "{w:#?}");
    assert!(
        w.history_requests_sent >= 6,
        "one per returning client: {w:#?}"
    );
    assert_eq!(w.history_pages_completed, w.history_requests_sent);
    assert_eq!(w.history_requests_refused, 0);
    assert_eq!(w.history_requests_abandoned, 0);
    assert!(w.archived_envelopes >= w.messages_sent, "{w:#?}");

    // The `--set` toggle: same nodes, keys, overlay and offline windows, no history.
    let off = with_param(&s, "history.use_mailserver", "false").unwrap();
    let without = run(&off);
    sane(&without);
    let o = &without.summary;
    assert_eq!(o.messages_sent, w.messages_sent);
    assert_eq!(o.history_requests_sent, 0);
    assert_eq!(o.deliveries_history, 0);
    assert!(o.delivery_ratio < 1.0, "{o:#?}");
    assert!(o.deliveries < w.deliveries);
    assert!(o.links < w.links, "clients' own mailserver links are gone");
}

#[test]
fn same_seed_same_trace() {
    let s = small();
    let a = run(&s);
    let b = run(&s);
    check_same(&a.summary, &b.summary).unwrap();
    assert_eq!(a.summary.delivery_ratio, 1.0, "{:#?}", a.summary);
    let c = run_scenario_full(&s, 2, spawn_node, &mut |_| {}).unwrap();
    assert_ne!(a.summary.trace_hash, c.summary.trace_hash);
}

/// Clients offline 10.5–40.5 s; the mailserver crashes at 41.5 s and restarts 0.3 s later, before
/// the clients' requests reach it. Only the replayed archive can answer them.
fn mailserver_restart(state: CrashState) -> RunOutput {
    let mut s = small();
    s.offline[0].duration_ms = 30_000;
    s.crashes = vec![CrashSpec {
        at_ms: 41_500,
        restart_after_ms: Some(300),
        state,
        select: NodeSelect {
            nodes: vec![0],
            ..Default::default()
        },
    }];
    run(&s)
}

#[test]
fn a_kept_mailserver_restart_serves_its_replayed_archive() {
    let kept = mailserver_restart(CrashState::Kept);
    sane(&kept);
    let k = &kept.summary;
    assert_eq!(k.restarts, 1);
    assert!(k.archive_restored > 0, "{k:#?}");
    assert!(
        k.history_request_retries > 0,
        "asked while it was down: {k:#?}"
    );
    assert_eq!(k.delivery_ratio, 1.0, "{k:#?}");
    assert!(k.deliveries_history > 0);

    let lost = mailserver_restart(CrashState::Lost);
    sane(&lost);
    let l = &lost.summary;
    assert_eq!(l.archive_restored, 0);
    assert!(l.delivery_ratio < 1.0, "{l:#?}");
}

#[test]
fn a_restarted_client_asks_for_what_it_missed() {
    let mut s = small();
    s.offline.clear();
    s.crashes = vec![CrashSpec {
        at_ms: 10_500,
        restart_after_ms: Some(20_000),
        state: CrashState::Kept,
        select: NodeSelect {
            nodes: vec![3, 4],
            ..Default::default()
        },
    }];
    let o = run(&s);
    sane(&o);
    let sum = &o.summary;
    assert_eq!(sum.restarts, 2);
    assert_eq!(sum.delivery_ratio, 1.0, "{sum:#?}");
    assert!(sum.deliveries_history > 0);
    assert!(sum.history_requests_sent >= 2);
}

#[test]
fn churning_clients_ask_on_every_return() {
    let mut s = small();
    s.offline.clear();
    s.churn = Some(ChurnSpec {
        offline_fraction: 0.4,
        mean_online_ms: 8_000,
        start_ms: 6_000,
        select: NodeSelect {
            count: Some(6),
            ..Default::default()
        },
    });
    let with = run(&s);
    sane(&with);
    let w = &with.summary;
    assert!(w.history_requests_sent > 6, "{w:#?}");
    assert!(w.deliveries_history > 0, "{w:#?}");
    assert!(w.delivery_ratio > w.delivery_ratio_live);
    let without = run(&with_param(&s, "history.use_mailserver", "false").unwrap());
    sane(&without);
    assert!(without.summary.delivery_ratio < w.delivery_ratio);
}
