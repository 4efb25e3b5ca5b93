//! The simulator driving the real `hush_core::node::Node`.
//!
//! Expected to FAIL (panic in the node's `unimplemented!` stubs) until `core::node` lands; the
//! lead runs it then: `cargo test -p hush-sim --test real_node`.

use hush_sim::{run_scenario, Scenario};

#[test]
fn real_node_default_scenario_small() {
    let scenario = Scenario {
        nodes: 8,
        degree: 2,
        ..Scenario::default()
    };
    let a = run_scenario(&scenario, 1).expect("scenario runs");
    assert_eq!(a.nodes, 8);
    assert_eq!(
        a.messages_sent, 10,
        "every send command should produce MessageSent"
    );
    assert_eq!(a.deliveries_expected, 10 * 7);
    // A ring of 8 with 20-100 ms links and 30 s of drain: everything must arrive, once.
    assert_eq!(a.deliveries, a.deliveries_expected, "summary: {a:#?}");
    assert_eq!(a.duplicate_deliveries, 0);
    assert_eq!(a.unknown_deliveries, 0);
    assert_eq!(
        a.peers_connected,
        2 * 8,
        "every link completes both handshakes"
    );
    assert_eq!(a.host_errors, 0);
    assert_eq!(a.invalid_actions, 0);
    assert!(!a.hit_event_cap);
    let b = run_scenario(&scenario, 1).expect("scenario runs");
    assert_eq!(a.trace_hash, b.trace_hash, "same seed, same trace");
}
