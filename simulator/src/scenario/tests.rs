use super::*;

#[test]
fn bundled_default_toml_matches_the_builtin_default() {
    let text = include_str!("../../../scenarios/default.toml");
    assert_eq!(Scenario::from_toml_str(text).unwrap(), Scenario::default());
}

#[test]
fn partial_toml_takes_defaults_and_unknown_fields_fail() {
    let s = Scenario::from_toml_str("nodes = 8\ndegree = 2\n").unwrap();
    assert_eq!(
        s,
        Scenario {
            nodes: 8,
            degree: 2,
            ..Scenario::default()
        }
    );
    assert!(matches!(
        Scenario::from_toml_str("nodez = 8"),
        Err(ScenarioError::Toml(_))
    ));
    assert!(matches!(
        Scenario::from_toml_str("nodes = 1"),
        Err(ScenarioError::TooFewNodes(1))
    ));
    // Typos inside flattened sections are caught too.
    let e = Scenario::from_toml_str("[[partitions]]\nat_ms = 1\nfractoin = 0.5\n").unwrap_err();
    assert_eq!(
        e,
        ScenarioError::Toml("unknown field `partitions[0].fractoin`".into())
    );
}

#[test]
fn default_timing() {
    let s = Scenario::default();
    assert_eq!(s.message_at_ms(0), 5_000);
    assert_eq!(s.message_at_ms(9), 23_000);
    assert_eq!(s.end_ms(), 53_000);
    assert_eq!(
        Scenario {
            duration_ms: Some(7),
            ..s
        }
        .end_ms(),
        7
    );
}

#[test]
fn every_section_parses() {
    let text = r#"
        nodes = 20
        [topology]
        kind = "barabasi-albert"
        m = 2
        [[roles]]
        role = "light"
        fraction = 0.25
        [[roles]]
        role = "full"
        nodes = [0, 1]
        [link]
        latency = { dist = "lognormal", median_ms = 50.0, sigma = 0.5 }
        bandwidth_kbps = 1000
        loss = 0.01
        rto_ms = 300
        duplication = 0.001
        jitter_ms = 5
        [[partitions]]
        at_ms = 1000
        heal_ms = 2000
        nodes = [3, 4]
        [churn]
        offline_fraction = 0.2
        mean_online_ms = 10000
        [[crashes]]
        at_ms = 500
        restart_after_ms = 100
        state = "lost"
        count = 2
        [[traffic.public]]
        chat = "a"
        members = { fraction = 0.5 }
        messages = 3
        poisson = true
        [privacy]
        spy_fraction = 0.1
        [model]
        kind = "whisper-scalability"
    "#;
    let s = Scenario::from_toml_str(text).unwrap();
    assert_eq!(s.topology, Some(TopologySpec::BarabasiAlbert { m: 2 }));
    assert_eq!(s.roles[0].role, Role::Light);
    assert_eq!(s.roles[0].select.fraction, Some(0.25));
    assert_eq!(
        s.link.latency,
        Some(LatencyDist::Lognormal {
            median_ms: 50.0,
            sigma: 0.5
        })
    );
    assert_eq!(s.partitions[0].side.nodes, vec![3, 4]);
    assert_eq!(s.crashes[0].state, CrashState::Lost);
    assert_eq!(s.traffic.public[0].schedule.messages, 3);
    assert!(s.traffic.public[0].schedule.poisson);
    assert_eq!(s.traffic.public[0].schedule.interval_ms, 2_000);
    assert!(s.unsupported().is_ok());
}

#[test]
fn invalid_values_are_typed_errors() {
    let bad = |t: &str| Scenario::from_toml_str(t).unwrap_err();
    assert!(matches!(
        bad("[link]\nloss = 1.0"),
        ScenarioError::OutOfRange {
            field: "link.loss",
            ..
        }
    ));
    assert!(matches!(
        bad("nodes = 5\n[[partitions]]\nat_ms = 1\nnodes = [5]"),
        ScenarioError::NoSuchNode { node: 5, .. }
    ));
    assert!(matches!(
        bad("nodes = 5\n[[crashes]]\nat_ms = 1\ncount = 6"),
        ScenarioError::TooManySelected { wanted: 6, .. }
    ));
    assert!(matches!(
        bad("[link]\nbandwidth_kbps = 0"),
        ScenarioError::MustBePositive(_)
    ));
    assert!(matches!(
        bad("[churn]\noffline_fraction = 0.5\nmean_online_ms = 0"),
        ScenarioError::MustBePositive(_)
    ));
}

#[test]
fn conversation_traffic_parses_and_runs() {
    let s = Scenario::from_toml_str(
        "[node]\ncontact_codes = false\n\
         [[traffic.one_to_one]]\npairs = 2\nexplicit = [[0, 1]]\nmvds = true\nmessages = 3\n\
         [[traffic.groups]]\ngroups = 1\nsize = 3\nlate_members = 1\nlate_at_ms = 9000\n",
    )
    .unwrap();
    assert!(s.unsupported().is_ok());
    assert!(s.has_conversations());
    assert!(!s.node.contact_codes);
    assert_eq!(s.traffic.one_to_one[0].explicit, vec![[0, 1]]);
    assert!(s.traffic.one_to_one[0].mvds);
    assert_eq!(s.traffic.one_to_one[0].schedule.messages, 3);
    let g = &s.traffic.groups[0];
    assert_eq!((g.size, g.late_members, g.late_at_ms), (3, 1, Some(9000)));
    assert_eq!(g.create_at_ms, DEFAULT_GROUP_CREATE_AT_MS);
    assert!(
        Scenario::default().node.contact_codes,
        "status-go publishes"
    );
    assert_eq!(
        Scenario::default().node.payload_format,
        PayloadFormatSpec::Auto
    );
    let p = Scenario::from_toml_str("[node]\npayload_format = \"protobuf\"").unwrap();
    assert_eq!(p.node.payload_format, PayloadFormatSpec::Protobuf);
    assert_eq!(
        p.node.payload_format.setting(),
        hush_core::chat::format::FormatSetting::Protobuf
    );
    assert!(Scenario::from_toml_str("[node]\npayload_format = \"json\"").is_err());
    assert_eq!(
        Scenario::from_toml_str("[[crashes]]\nat_ms = 1\nstate = \"new-key\"\nnodes = [0]")
            .unwrap()
            .crashes[0]
            .state,
        CrashState::NewKey
    );
}

#[test]
fn conversation_mistakes_are_typed_errors() {
    let bad = |t: &str| Scenario::from_toml_str(t).unwrap_err();
    assert!(matches!(
        bad("[[traffic.groups]]\ngroups = 1\nsize = 1"),
        ScenarioError::Invalid {
            field: "traffic.groups.size",
            ..
        }
    ));
    assert!(matches!(
        bad("[[traffic.groups]]\ngroups = 1\nsize = 3\nlate_members = 1"),
        ScenarioError::Invalid {
            field: "traffic.groups.late_at_ms",
            ..
        }
    ));
    assert!(matches!(
        bad(
            "nodes = 4\n[[traffic.groups]]\ngroups = 1\nsize = 4\nlate_members = 1\nlate_at_ms = 1"
        ),
        ScenarioError::TooManySelected { .. }
    ));
    assert!(matches!(
        bad("[[traffic.one_to_one]]\nexplicit = [[2, 2]]"),
        ScenarioError::Invalid { .. }
    ));
    assert!(matches!(
        bad("nodes = 4\n[[traffic.one_to_one]]\nexplicit = [[0, 9]]"),
        ScenarioError::NoSuchNode { node: 9, .. }
    ));
    assert!(matches!(
        bad("nodes = 4\n[[traffic.one_to_one]]\npairs = 7"),
        ScenarioError::TooManySelected { .. }
    ));
    assert!(matches!(
        bad("[node]\ncontact_code = false"),
        ScenarioError::Toml(_)
    ));
}

#[test]
fn mailserver_role_and_history_parse_and_validate() {
    let s = Scenario::from_toml_str(
        "[[roles]]\nrole = \"mailserver\"\nnodes = [0]\n\
         [history]\nuse_mailserver = true\nmargin_ms = 5000\ncount = 3\n\
         [[offline]]\nat_ms = 1000\nduration_ms = 2000\nnodes = [1, 2]",
    )
    .unwrap();
    assert!(s.unsupported().is_ok());
    assert!(s.history.use_mailserver);
    assert_eq!(s.history.margin_ms, 5000);
    assert_eq!(s.history.clients.count, Some(3));
    assert_eq!(s.history.request_delay_ms, DEFAULT_HISTORY_REQUEST_DELAY_MS);
    assert_eq!(s.offline[0].select.nodes, vec![1, 2]);
    // The toggle alone, without any mailserver, is an error.
    assert_eq!(
        Scenario::from_toml_str("[history]\nuse_mailserver = true").unwrap_err(),
        ScenarioError::NoMailserver
    );
    // Mailservers without clients using them are fine (they relay and archive).
    assert!(Scenario::from_toml_str("[[roles]]\nrole = \"mailserver\"\ncount = 1").is_ok());
    for (text, err) in [
        (
            "[[offline]]\nat_ms = 1\nduration_ms = 0\nnodes = [1]",
            ScenarioError::MustBePositive("offline.duration_ms"),
        ),
        (
            "[history]\nmax_attempts = 0",
            ScenarioError::MustBePositive("history.max_attempts"),
        ),
        (
            "[history]\nretry_interval_ms = 0",
            ScenarioError::MustBePositive("history.retry_interval_ms"),
        ),
    ] {
        assert_eq!(Scenario::from_toml_str(text).unwrap_err(), err, "{text}");
    }
    assert!(matches!(
        Scenario::from_toml_str("[[offline]]\nat_ms = 1\nduration_ms = 5\nnodes = [99]"),
        Err(ScenarioError::NoSuchNode { .. })
    ));
    let typo = Scenario::from_toml_str("[history]\nuse_mailservers = true").unwrap_err();
    assert!(
        matches!(&typo, ScenarioError::Toml(m) if m.contains("history.use_mailservers")),
        "{typo}"
    );
}
