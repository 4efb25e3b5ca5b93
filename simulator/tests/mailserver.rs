//! Issue 4's simulator scenario: nodes offline while messages were sent get them from a
//! mailserver after they come back (`scenarios/mailserver-offline.toml`), and miss them
//! without it. Real nodes, fixed seeds, small sizes.

use hush_sim::cli::BUNDLED;
use hush_sim::run::{run_scenario_full, spawn_node, RunOutput};
use hush_sim::scenario::Scenario;

fn bundled(name: &str) -> Scenario {
    let text = BUNDLED.iter().find(|(n, _)| *n == name).unwrap().1;
    Scenario::from_toml_str(text).unwrap()
}

fn run(s: &Scenario) -> RunOutput {
    run_scenario_full(s, s.seed.unwrap_or(1), spawn_node, &mut |_, _| {}).unwrap()
}

#[test]
fn probe() {
    let s = bundled("mailserver-offline");
    let a = run(&s);
    let mut sum = a.summary.clone();
    sum.per_node.clear();
    eprintln!("{sum:#?}");
    let mut s2 = s.clone();
    s2.history.use_mailserver = false;
    let mut b = run(&s2).summary;
    b.per_node.clear();
    eprintln!("{b:#?}");
}
