//! `hush node`: command-line arguments and start-up.
//!
//! Contract: [`run_node`] creates the data directory and node key if needed, draws a node seed
//! from the OS, binds `--listen`, builds a `hush_core::node::Node` and runs the
//! [driver](crate::driver) until `/quit` on stdin (EOF on stdin does not stop the node; SIGINT
//! and SIGTERM end the process with the default action). It is the only place in hush that
//! reads OS randomness.
//!
//! Mailserver: `--mailserver` gives the node the mailserver role; its archive lives in
//! `DATA_DIR/archive.sqlite` and is replayed into the node before it starts listening, so it
//! survives restarts. `--mailserver-peer ENODE` dials that node, trusts it, and makes it the
//! target of `/request NAME [SINCE]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use futures_lite::{AsyncBufReadExt, StreamExt};
use hush_core::node::{Node, NodeConfig};
use hush_core::p2p::enode::Enode;
use hush_core::whisper::MailserverConfig;
use rand_core::{OsRng, RngCore};

use crate::archive::{ArchiveStore, ARCHIVE_FILE};
use crate::driver::{run, Clock, DriverConfig, Outputs};
use crate::nodekey::load_or_create;

/// Arguments of `hush node`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Data directory (created if absent); holds `nodekey` and `messages.jsonl`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// TCP address to listen on; port 0 picks a free port (the enode line shows the real one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Static peer, as enode://<128 hex>@<ip>:<port> (repeatable): dialed at start and redialed
    /// by the node whenever the connection is down (1 s back-off doubling to 2 min).
    #[arg(long = "peer", value_name = "ENODE")]
    pub peers: Vec<Enode>,
    /// Public chat to join at start (repeatable).
    #[arg(long = "join", value_name = "NAME")]
    pub join: Vec<String>,
    /// Print received messages as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Run as a mailserver: archive every envelope (DATA_DIR/archive.sqlite) and answer
    /// history requests.
    #[arg(long)]
    pub mailserver: bool,
    /// Trusted mailserver to dial and to send `/request` to, as an enode URL (repeatable).
    #[arg(long = "mailserver-peer", value_name = "ENODE")]
    pub mailserver_peers: Vec<Enode>,
    /// Most envelopes the mailserver keeps in memory (older ones stay on disk only).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub mailserver_max_envelopes: usize,
}

/// Runs `hush node` with real stdin/stdout/stderr until `/quit`.
pub fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let secret_key = load_or_create(&args.data_dir, &mut OsRng)?;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let clock = Clock::new();

    smol::block_on(async move {
        let listener = smol::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding --listen {}", args.listen))?;
        let port = listener.local_addr().context("listener address")?.port();
        let mut config = NodeConfig {
            listen_port: port,
            mailservers: args.mailserver_peers.iter().map(|e| e.public_key).collect(),
            ..NodeConfig::default()
        };
        if args.mailserver {
            config.whisper.mailserver = Some(MailserverConfig {
                max_archive_envelopes: args.mailserver_max_envelopes,
                ..MailserverConfig::default()
            });
        }
        let mut node =
            Node::new(config, secret_key, seed, clock.now()).context("creating the node")?;
        if args.mailserver {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            let store = ArchiveStore::open(&args.data_dir.join(ARCHIVE_FILE))?;
            let mut restored = 0u64;
            let mut bad = 0u64;
            store.for_each(|raw| match node.restore_archived(raw) {
                Ok(true) => restored += 1,
                Ok(false) => {}
                Err(_) => bad += 1,
            })?;
            tracing::info!(restored, bad, "mailserver archive loaded");
            eprintln!("hush: mailserver archive loaded envelopes={restored} undecodable={bad}");
        }
        let mut peers = args.peers.clone();
        for m in &args.mailserver_peers {
            if !peers.contains(m) {
                peers.push(*m);
            }
        }

        let (line_tx, line_rx) = smol::channel::unbounded::<String>();
        // Reading stdin blocks; `Unblock` moves it to a thread. Dropping `line_tx` at EOF closes
        // the channel, which the driver treats as "no more commands", not as quit.
        let stdin_task = smol::spawn(async move {
            let mut lines = smol::io::BufReader::new(smol::Unblock::new(std::io::stdin())).lines();
            while let Some(Ok(line)) = lines.next().await {
                if line_tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        let driver_config = DriverConfig {
            data_dir: args.data_dir.clone(),
            peers,
            join: args.join.clone(),
            json: args.json,
            archive_path: None,
        };
        let io = Outputs {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
        };
        let result = run(node, listener, clock, driver_config, line_rx, io).await;
        drop(stdin_task);
        result
    })
}
