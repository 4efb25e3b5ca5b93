//! 1:1 pairs and private groups, run with the real node at small sizes and fixed seeds:
//! delivery, exactly-once, privacy (nothing at non-recipients), MVDS under churn, crashes with
//! state kept, determinism.

use hush_sim::run::{run_scenario_full, spawn_node, KindSummary, RunOutput};
use hush_sim::scenario::Scenario;

fn run(s: &Scenario) -> RunOutput {
    run_scenario_full(s, s.seed.unwrap_or(1), spawn_node, &mut |_, _| {}).unwrap()
}

fn kind<'a>(o: &'a RunOutput, k: &str) -> &'a KindSummary {
    o.summary
        .by_kind
        .get(k)
        .unwrap_or_else(|| panic!("no {k} in {:#?}", o.summary.by_kind))
}

fn small(extra: &str) -> Scenario {
    Scenario::from_toml_str(&format!(
        "nodes = 10\ndegree = 4\nmessages = 0\nduration_ms = 40000\nseed = 3\n{extra}"
    ))
    .unwrap()
}

#[test]
fn smoke() {
    let s = small(
        "[[traffic.one_to_one]]\npairs = 3\nmessages = 4\nfirst_at_ms = 5000\ninterval_ms = 2000\n\
         [[traffic.groups]]\ngroups = 1\nsize = 4\nmessages = 4\nfirst_at_ms = 8000\ninterval_ms = 2000\n",
    );
    let o = run(&s);
    eprintln!("{:#?}", o.summary.by_kind);
    for m in &o.conversation_messages {
        eprintln!("{m:?}");
    }
    let _ = kind(&o, "dm");
}
