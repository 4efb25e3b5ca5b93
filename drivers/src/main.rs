//! The `hush` binary: `hush node` (a lightweight node over TCP) and `hush sim` (the simulator).

use std::io::IsTerminal;

use clap::{Parser, Subcommand};
use hush_drivers::cli::{run_node, NodeArgs};

use hush_sim::cli as sim_cli;

/// mimalloc rather than the system allocator: the simulator allocates a payload per frame and
/// message for thousands of nodes, and with mimalloc the 10,000-node scale run takes ≈ 19 % less
/// time (docs/scaling.md). `hush node` takes the same allocation paths per frame; its gain was
/// not measured separately.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hush: the 2019 Status messaging stack (devp2p RLPx → Whisper v6 → public chat).
#[derive(Parser, Debug)]
#[command(name = "hush", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a node over TCP: stdout gets the enode line then received messages; stdin (or a
    /// --script of timed commands) takes /join NAME, /leave NAME, /send NAME TEXT, /quit.
    // Boxed: the node's flags outweigh the other subcommands' (clippy large_enum_variant).
    Node(Box<NodeArgs>),
    /// Run a simulation scenario.
    Sim(sim_cli::SimArgs),
    /// Node identity: `new`, `export` / `import` as Ethereum keystore v3 JSON.
    Key(hush_drivers::keystore::cli::KeyArgs),
    /// Benchmarks: `e2e` runs two nodes on loopback (msg/s, CPU µs/msg, fsyncs/msg).
    Bench(hush_drivers::bench::BenchArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout is machine-readable. Colours only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Cmd::Node(args) => run_node(*args),
        Cmd::Sim(args) => sim_cli::run(args),
        Cmd::Key(args) => hush_drivers::keystore::cli::run_key(args),
        Cmd::Bench(args) => match args.which {
            hush_drivers::bench::BenchCmd::E2e(e2e) => hush_drivers::bench::run_e2e(&e2e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, outermost context first (e.g. a wrong store passphrase says so).
            eprintln!("hush: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
