//! Scenarios that drive a single protocol layer directly, outside the whole-node engine.
//!
//! Contract: each scenario is plain data plus a `run_*` function that is deterministic in its
//! seed (same scenario + seed → the same summary).

pub mod mvds_offline;
