use super::*;

const GB: u64 = 1_000_000_000;

/// Issue 16 item 4: `--nodes 10000000` aborted on a 57 GB allocation; it is refused up front,
/// with the estimate and the limit in the message.
#[test]
fn ten_million_nodes_are_refused_with_the_estimate() {
    let scenario = Scenario {
        nodes: 10_000_000,
        ..Scenario::default()
    };
    scenario.validate().unwrap();
    let err = check(&scenario, 16 * GB).unwrap_err();
    let ScenarioError::TooMuchMemory {
        estimate_bytes,
        limit_bytes,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert!(estimate_bytes > 57 * GB, "{}", gb(estimate_bytes));
    assert_eq!(limit_bytes, 16 * GB);
    let text = err.to_string();
    assert!(
        text.contains("10000000 nodes")
            && text.contains("16.0 GB")
            && text.contains("--max-memory-gb"),
        "{text}"
    );
}

/// Issue 16 item 4: a billion messages at once (interval 0) allocated 4.7 GB and aborted.
#[test]
fn a_billion_messages_at_once_are_refused() {
    let scenario = Scenario {
        nodes: 10,
        messages: 1_000_000_000,
        message_interval_ms: 0,
        ..Scenario::default()
    };
    scenario.validate().unwrap();
    let e = estimate(&scenario);
    assert_eq!(e.planned_messages, 1_000_000_000);
    assert!(e.total_bytes() > 100 * GB, "{}", gb(e.total_bytes()));
    let err = check(&scenario, 16 * GB).unwrap_err().to_string();
    assert!(err.contains("1000000000 messages"), "{err}");
}

/// What the repository ships runs under a modest limit (no false refusals), and the bundled
/// 10,000-node scale scenario fits the machines it was run on.
#[test]
fn shipped_scenarios_fit() {
    assert!(check(&Scenario::default(), GB).is_ok());
    for (name, text) in crate::cli::BUNDLED {
        let Ok(s) = Scenario::from_toml_str(text) else {
            continue; // mvds-offline has its own runner
        };
        let e = estimate(&s);
        assert!(e.total_bytes() < 16 * GB, "{name}: {}", gb(e.total_bytes()));
    }
}

#[test]
fn messages_past_the_end_or_spread_out_cost_less() {
    // Only the messages sent before the end count.
    let s = Scenario {
        nodes: 10,
        messages: 1_000_000_000,
        message_interval_ms: 1000,
        duration_ms: Some(60_000),
        ..Scenario::default()
    };
    let e = estimate(&s);
    assert!(e.planned_messages <= 60, "{e:?}");
    // Spread out, fewer are alive at once: the pools hold less.
    let burst = estimate(&Scenario {
        nodes: 100,
        messages: 1000,
        message_interval_ms: 0,
        ..Scenario::default()
    });
    let spread = estimate(&Scenario {
        nodes: 100,
        messages: 1000,
        message_interval_ms: 1000,
        ..Scenario::default()
    });
    assert!(
        spread.pools_bytes < burst.pools_bytes,
        "{spread:?} {burst:?}"
    );
}

#[test]
fn physical_memory_gives_the_default_limit() {
    let limit = default_limit_bytes();
    match physical_memory_bytes() {
        Some(b) => assert_eq!(limit, (b as f64 * DEFAULT_MEMORY_FRACTION) as u64),
        None => assert_eq!(limit, FALLBACK_LIMIT_BYTES),
    }
}

/// The runs the constants were fitted to (`docs/scaling.md` § "Memory estimate"): the estimate
/// stays within a factor of 4 below and 10 % above the measured peak RSS.
#[test]
fn estimate_tracks_the_measured_runs() {
    let run = |nodes: usize, messages: u32, interval_ms: u64, contact_codes: bool| {
        let mut s = Scenario {
            nodes,
            messages,
            message_interval_ms: interval_ms,
            ..Scenario::default()
        };
        s.node.contact_codes = contact_codes;
        // Measured before contact codes had a steady state: every node published at start.
        s.node.contact_code_start = crate::scenario::ContactCodeStart::Fresh;
        estimate(&s).total_bytes()
    };
    let kib = 1024u64;
    for (estimate_bytes, measured_kib) in [
        (run(200, 0, 2000, true), 90_336),
        (run(800, 0, 2000, true), 767_536),
        (run(200, 0, 2000, false), 43_220),
        (run(800, 0, 2000, false), 108_668),
        (run(10, 0, 2000, false), 18_668),
        (run(10, 100_000, 0, false), 708_964),
        (run(10, 1_000_000, 0, false), 749_652),
        (run(100, 2000, 0, false), 496_016),
        (run(100, 2000, 100, false), 69_072),
    ] {
        let measured = measured_kib * kib;
        assert!(
            estimate_bytes <= measured + measured / 10 && estimate_bytes * 4 >= measured,
            "estimate {} vs measured {}",
            gb(estimate_bytes),
            gb(measured)
        );
    }
}
