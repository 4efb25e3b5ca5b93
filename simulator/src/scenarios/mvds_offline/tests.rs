use super::*;

#[test]
fn online_group_delivers_everything_once() {
    let s = MvdsOfflineScenario {
        offline_pct: 0,
        nodes: 4,
        duration_ms: 120_000,
        ..MvdsOfflineScenario::default()
    };
    let r = run_mvds_offline(&s, 1).unwrap();
    assert_eq!(r.messages, 20);
    assert_eq!(r.deliveries, r.expected_deliveries);
    assert_eq!(r.duplicate_deliveries, 0);
    assert_eq!(r.final_sync_states, 0);
    // Relaying (every member re-shares) and acks cost more than the ideal, but boundedly.
    assert!(
        r.bandwidth_multiplier > 1.0 && r.bandwidth_multiplier < 10.0,
        "{r:?}"
    );
    // First send waits one epoch boundary: at most two epochs plus latency.
    assert!(r.latency_max_ms.unwrap() <= 2 * 300 + 100, "{r:?}");
}

#[test]
fn deterministic_in_the_seed() {
    let s = MvdsOfflineScenario {
        duration_ms: 600_000,
        ..MvdsOfflineScenario::default()
    };
    let a = run_mvds_offline(&s, 7).unwrap();
    let b = run_mvds_offline(&s, 7).unwrap();
    assert_eq!(a, b);
    let c = run_mvds_offline(&s, 8).unwrap();
    assert_ne!(a.bytes_sent, c.bytes_sent);
}

/// The published case (vacp2p/mvds simulation defaults: 3 nodes, 2 communicating, a message
/// every 5 s, 90 % offline), with each retransmission function and both offline models. Prints
/// the figures; asserts only what must hold (no duplicates).
#[test]
fn ninety_percent_offline() {
    for model in [OfflineModel::Drop, OfflineModel::Churn] {
        for backoff in [
            BackoffKind::StatusGo,
            BackoffKind::Linear,
            BackoffKind::Exponential,
        ] {
            let s = MvdsOfflineScenario {
                offline_model: model,
                backoff,
                ..MvdsOfflineScenario::default()
            };
            let r = run_mvds_offline(&s, 1).unwrap();
            eprintln!(
                "{model:?}/{backoff:?}: delivery {:.3} latency p50 {:?} p95 {:?} ms, bandwidth ×{:.2}, left {}",
                r.delivery_ratio, r.latency_p50_ms, r.latency_p95_ms, r.bandwidth_multiplier,
                r.final_sync_states
            );
            assert_eq!(r.duplicate_deliveries, 0);
            assert!(!r.hit_event_cap);
        }
    }
}

#[test]
fn rejects_bad_parameters() {
    let bad = MvdsOfflineScenario {
        nodes: 1,
        ..MvdsOfflineScenario::default()
    };
    assert!(run_mvds_offline(&bad, 1).is_err());
    let bad = MvdsOfflineScenario {
        offline_pct: 101,
        ..MvdsOfflineScenario::default()
    };
    assert!(run_mvds_offline(&bad, 1).is_err());
    let toml_text =
        "nodes = 5\noffline_pct = 50\noffline_model = \"churn\"\nbackoff = \"exponential\"\n";
    let s: MvdsOfflineScenario = toml::from_str(toml_text).unwrap();
    assert_eq!(s.nodes, 5);
    assert_eq!(s.offline_model, OfflineModel::Churn);
}

/// A simulated day of the published case (virtual time: well under a second of CPU).
#[test]
fn ninety_percent_offline_for_a_day() {
    for model in [OfflineModel::Drop, OfflineModel::Churn] {
        for backoff in [
            BackoffKind::StatusGo,
            BackoffKind::Linear,
            BackoffKind::Exponential,
        ] {
            let s = MvdsOfflineScenario {
                offline_model: model,
                backoff,
                duration_ms: 24 * 3_600_000,
                ..MvdsOfflineScenario::default()
            };
            let r = run_mvds_offline(&s, 1).unwrap();
            eprintln!(
                "{model:?}/{backoff:?}: delivery {:.3} latency p50 {:?} p95 {:?} ms, bandwidth ×{:.2}, left {}",
                r.delivery_ratio, r.latency_p50_ms, r.latency_p95_ms, r.bandwidth_multiplier,
                r.final_sync_states
            );
            assert_eq!(r.duplicate_deliveries, 0);
        }
    }
}
