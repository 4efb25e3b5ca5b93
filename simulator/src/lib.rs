//! hush-sim: a deterministic discrete-event simulator for hush nodes.
//!
//! Contract:
//! - The simulator contains no protocol logic. It moves bytes, time and commands between
//!   [`Host`]s (in production [`hush_core::node::Node`]; in tests the [`fake::FloodHost`]) over a
//!   modelled network, and measures what comes out.
//! - One event queue ordered by `(time_ms, seq)`; the clock jumps to the next event, it never
//!   ticks ([`engine::Sim`]).
//! - Everything is derived from one master `u64` seed ([`run::run_scenario`]): node keys and
//!   seeds, the topology, link latencies, dial times and traffic. Same seed, same inputs → the
//!   same trace hash; no hash-map iteration reaches an output.
//! - Entry points: [`run::run_scenario`] (real nodes), [`run::run_scenario_with`] (any host),
//!   [`cli::run`] (the `hush sim` subcommand).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod engine;
pub mod fake;
pub mod host;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod net;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scenarios;
pub mod topology;
pub mod trace;

pub use engine::Sim;
pub use host::Host;
pub use metrics::Summary;
pub use run::{run_scenario, run_scenario_with, SimError};
pub use scenario::Scenario;
