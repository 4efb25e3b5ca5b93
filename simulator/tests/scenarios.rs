//! Every bundled scenario, run with the real node at small sizes and fixed seeds, and the fault
//! and role machinery checked end to end.

use hush_sim::cli::BUNDLED;
use hush_sim::run::{run_scenario_full, spawn_node, RunOutput};
use hush_sim::scenario::{CrashSpec, CrashState, NodeSelect, Role, RoleSpec, Scenario};
use hush_sim::SimError;

fn bundled(name: &str) -> Scenario {
    let text = BUNDLED.iter().find(|(n, _)| *n == name).unwrap().1;
    Scenario::from_toml_str(text).unwrap()
}

fn run(s: &Scenario) -> RunOutput {
    run_scenario_full(s, s.seed.unwrap_or(1), spawn_node, &mut |_| {}).unwrap()
}

fn sane(o: &RunOutput) {
    let s = &o.summary;
    assert_eq!(s.unknown_deliveries, 0, "{s:#?}");
    assert_eq!(s.duplicate_deliveries, 0, "{s:#?}");
    assert_eq!(s.host_errors, 0);
    assert_eq!(s.invalid_actions, 0);
    assert!(!s.hit_event_cap);
    assert_eq!(o.messages.len() as u64, s.messages_sent);
    let received: u64 = o.messages.iter().map(|m| m.received).sum();
    assert_eq!(received, s.deliveries);
    assert_eq!(o.latencies_ms.len() as u64, s.deliveries);
    assert_eq!(o.deliveries_per_bucket.iter().sum::<u64>(), s.deliveries);
}

#[test]
fn default_small_delivers_everything_deterministically() {
    let s = Scenario {
        nodes: 12,
        ..bundled("default")
    };
    let a = run(&s);
    sane(&a);
    assert_eq!(a.summary.delivery_ratio, 1.0);
    assert_eq!(a.summary.deliveries, 10 * 11);
    assert_eq!(a.summary.peers_connected, 2 * a.summary.links as u64);
    let b = run(&s);
    hush_sim::cli::check_same(&a.summary, &b.summary).unwrap();
}

#[test]
fn whisper_scalability_small_prints_model_beside_measurement() {
    let s = Scenario {
        nodes: 30,
        ..bundled("whisper-scalability")
    };
    let o = run(&s);
    sane(&o);
    let sum = &o.summary;
    assert_eq!(sum.delivery_ratio, 1.0);
    let m = sum.model.as_ref().expect("model comparison");
    assert_eq!(m.users, 30);
    assert_eq!(m.sim_messages, 30);
    // Model case 2 for 30 users: 1 kB × 10 × 100 × 30.
    assert_eq!(m.model_case2_bytes_per_day, 1024.0 * 10.0 * 100.0 * 30.0);
    let per_msg = m.sim_bytes_per_node_per_message.unwrap();
    // A Status public message is a few hundred bytes; gossip brings each node several copies.
    assert!((300.0..20_000.0).contains(&per_msg), "{per_msg}");
    assert_eq!(m.sim_bytes_per_day, Some(per_msg * 30.0 * 100.0));
    let dup = m.sim_duplicate_factor.unwrap();
    assert!(dup > 1.0, "degree-8 gossip must show duplicates: {dup}");
    assert!(hush_sim::report::summary_table(sum).contains("model case 2"));
}

#[test]
fn partition_heal_loses_expired_messages_and_reconnects() {
    let s = Scenario {
        nodes: 20,
        ..bundled("partition-heal")
    };
    let o = run(&s);
    sane(&o);
    let sum = &o.summary;
    assert!(sum.links_cut > 0, "{sum:#?}");
    // Crossing links were closed and redialed after the heal.
    assert!(sum.peers_disconnected > 0);
    assert!(sum.peers_connected > 2 * sum.links as u64);
    // Messages sent early in the 20 s partition expire (TTL 10 s) before the heal.
    assert!(sum.delivery_ratio < 0.95, "{}", sum.delivery_ratio);
    assert!(sum.delivery_ratio > 0.5, "{}", sum.delivery_ratio);
    // Messages after the heal reach everyone.
    let late = o.messages.iter().filter(|m| m.sent_ms > 40_000);
    for m in late {
        assert_eq!(m.received, m.expected, "{m:?}");
    }
    let p = sum.privacy.as_ref().unwrap();
    assert_eq!(p.spies, 2);
    assert!(p.messages_seen_by_spies > 0);
    let healed_never = Scenario {
        partitions: vec![],
        ..s
    };
    assert_eq!(run(&healed_never).summary.delivery_ratio, 1.0);
}

#[test]
fn crashes_churn_light_nodes_and_spies() {
    let s = Scenario {
        nodes: 16,
        degree: 4,
        messages: 20,
        message_interval_ms: 1_000,
        roles: vec![RoleSpec {
            role: Role::Light,
            select: NodeSelect {
                count: Some(3),
                ..Default::default()
            },
        }],
        crashes: vec![
            CrashSpec {
                at_ms: 8_000,
                restart_after_ms: Some(3_000),
                state: CrashState::Kept,
                select: NodeSelect {
                    nodes: vec![1],
                    ..Default::default()
                },
            },
            CrashSpec {
                at_ms: 9_000,
                restart_after_ms: Some(2_000),
                state: CrashState::Lost,
                select: NodeSelect {
                    nodes: vec![2],
                    ..Default::default()
                },
            },
        ],
        churn: Some(hush_sim::scenario::ChurnSpec {
            offline_fraction: 0.3,
            mean_online_ms: 5_000,
            start_ms: 4_000,
            select: NodeSelect {
                count: Some(4),
                ..Default::default()
            },
        }),
        privacy: hush_sim::scenario::PrivacySpec { spy_fraction: 0.25 },
        ..Scenario::default()
    };
    let a = run(&s);
    let sum = &a.summary;
    assert_eq!(sum.unknown_deliveries, 0);
    assert_eq!(sum.duplicate_deliveries, 0, "{sum:#?}");
    assert_eq!(sum.restarts, 2);
    assert_eq!(sum.roles.get("light"), Some(&3));
    assert!(sum.links_cut > 0);
    assert!(
        sum.delivery_ratio > 0.3 && sum.delivery_ratio <= 1.0,
        "{sum:#?}"
    );
    let p = sum.privacy.as_ref().unwrap();
    assert_eq!(p.spies, 4);
    assert!(p.correct_guesses <= p.messages_seen_by_spies);
    assert!(p.messages_seen_by_spies <= p.messages_by_honest);
    let b = run(&s);
    hush_sim::cli::check_same(&a.summary, &b.summary).unwrap();
}

#[test]
fn mailserver_role_runs_as_an_archiving_relay() {
    let mut s = Scenario {
        nodes: 10,
        degree: 2,
        roles: vec![RoleSpec {
            role: Role::Mailserver,
            select: NodeSelect {
                nodes: vec![0],
                ..Default::default()
            },
        }],
        ..Scenario::default()
    };
    // Every node publishes its contact code at the start (nobody had before).
    s.node.contact_code_start = hush_sim::scenario::ContactCodeStart::Fresh;
    let a = run(&s);
    sane(&a);
    let sum = &a.summary;
    assert_eq!(sum.roles.get("mailserver"), Some(&1));
    // Not a member: 9 members, 8 receivers each; it still relays and archives every message.
    assert_eq!(sum.members, 9);
    assert_eq!(sum.deliveries_expected, sum.messages_sent * 8);
    assert_eq!(sum.delivery_ratio, 1.0, "{sum:#?}");
    // Every chat message, plus the contact code each of the nodes publishes at its first
    // timeout (status-chat.md §2: contact codes are Whisper envelopes like any other); the
    // duplicate factor tells the two apart.
    assert_eq!(
        sum.archived_envelopes,
        sum.messages_sent + sum.nodes as u64,
        "{sum:#?}"
    );
    assert_eq!(sum.history_requests_sent, 0);
    let no_clients = run_scenario_full(
        &Scenario {
            history: hush_sim::scenario::HistorySpec {
                use_mailserver: true,
                ..Default::default()
            },
            roles: Vec::new(),
            ..s
        },
        1,
        spawn_node,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(no_clients, SimError::Scenario(_)), "{no_clients}");
}

#[test]
fn chat_duplicate_factor_is_measured_apart_and_within_the_overlays_bounds() {
    // Everyone publishes a contact code at the start, beside 10 chat messages: the chat's
    // duplicate factor is measured on chat envelopes alone.
    let mut s = Scenario {
        nodes: 20,
        ..Scenario::default()
    };
    s.node.contact_code_start = hush_sim::scenario::ContactCodeStart::Fresh;
    let out = run(&s);
    sane(&out);
    let d = &out.summary.duplicate_factor;
    // Each of the 10 chat envelopes reaches the 20 nodes, each of the 20 codes too.
    assert_eq!(d.public.pooled, 10 * 20, "{d:#?}");
    assert_eq!(d.contact_code.pooled, 20 * 20, "{d:#?}");
    let f = d.public.factor.unwrap();
    assert_eq!((d.theory_min, d.theory_max), (2.0, 4.0));
    assert!(
        (d.theory_min..=d.theory_max).contains(&f),
        "chat factor {f} outside [d/2, d]: {d:#?}"
    );
    let e = &out.summary.envelopes;
    assert_eq!(
        d.public.received + d.contact_code.received + d.other.received,
        e.envelopes_received
    );
}

#[test]
fn steady_state_contact_codes_are_spread_over_their_period() {
    // A period twice the run: about half the nodes publish during it, at spread times, and
    // no node publishes twice.
    let mut s = Scenario {
        nodes: 20,
        ..Scenario::default()
    };
    s.node.contact_code_interval_ms = 2 * s.end_ms();
    let out = run(&s);
    sane(&out);
    let codes = out.summary.duplicate_factor.contact_code.pooled;
    assert_eq!(codes % 20, 0, "each code reaches every node");
    let published = codes / 20;
    assert!((3..=17).contains(&published), "{published} of 20 published");
    // Off: none.
    s.node.contact_codes = false;
    assert_eq!(run(&s).summary.duplicate_factor.contact_code.pooled, 0);
}
