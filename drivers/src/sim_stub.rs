//! TEMPORARY stand-in for `hush_sim::cli` until the simulator lands. The lead deletes this file
//! and the `mod sim_stub;` line in main.rs, and points `sim_cli` at `hush_sim::cli`.

/// Arguments of `hush sim` (placeholder).
#[derive(clap::Args, Debug)]
pub struct SimArgs {}

/// Placeholder for `hush_sim::cli::run`.
pub fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("hush sim: the simulator is not part of this build yet")
}
