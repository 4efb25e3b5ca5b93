//! `hush node`: command-line arguments and start-up.
//!
//! Contract: [`run_node`] creates the data directory and node key if needed, draws a node seed
//! from the OS, binds `--listen`, builds a `hush_core::node::Node` and runs the
//! [driver](crate::driver) until `/quit` on stdin or SIGINT/SIGTERM (either way the node says
//! Disconnect ClientQuitting to every peer and flushes for a bounded time before it exits; EOF
//! on stdin does not stop the node). Stdin is read a line at a time into a bounded queue
//! ([`STDIN_LINES_QUEUED`]), so when the driver pauses stdin (back-pressure) the pipe fills and
//! the writer waits. Lines are read as bytes ([`forward_stdin`]): one that is not UTF-8 is
//! reported, counted and skipped, and reading goes on. It is the only place in hush that reads
//! OS randomness.
//!
//! Storage: `DATA_DIR/node.sqlite` ([`crate::store`]) holds the conversation records, the
//! message history and the chats; at start the node is rebuilt from it with
//! `Node::restore` (a fresh seed every start), rejoins its public chats and takes back their
//! seen message ids. With a passphrase (`--passphrase-file`, else `$HUSH_PASSPHRASE`) the
//! identity is sealed in the store ([`crate::identity`]), `node.sqlite` and `archive.sqlite`
//! are SQLCipher-encrypted ([`crate::sqlcipher`]; a plaintext store is encrypted in place at
//! the first such start) and no plaintext `messages.jsonl` is written; without one the
//! identity is the plaintext `nodekey`, the store is plaintext, and a warning says so.
//!
//! Unattended (issue 18): `--script FILE` ([`crate::script`]) feeds timed commands into the
//! stdin lines' queue, so neither stdin nor a terminal is needed and the node runs until
//! `/quit` or a signal. `--nat extip:IP` is the address in our enode URL (startup line,
//! `/whoami`); an unspecified listen address without it is warned about. `--nodekey FILE` /
//! `--nodekeyhex HEX` (geth's) give the key: adopted by a data dir without an identity,
//! refused when the dir holds another one ([`adopt_given_key`], [`refuse_other_identity`]).
//!
//! Mailserver: `--mailserver` gives the node the mailserver role; its archive lives in
//! `DATA_DIR/archive.sqlite` and is replayed into the node before it starts listening, so it
//! survives restarts. `--mailserver-peer ENODE` dials that node, trusts it, and makes it the
//! target of `/request NAME [SINCE]`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures_lite::{AsyncBufRead, AsyncBufReadExt, StreamExt};
use hush_core::chat::format::FormatSetting;
use hush_core::mvds::Retransmission;
use hush_core::node::{Command, Node, NodeConfig};
use hush_core::p2p::enode::Enode;
use hush_core::whisper::MailserverConfig;
use rand_core::{OsRng, RngCore};

use crate::archive::{ArchiveStore, ARCHIVE_FILE};
use crate::driver::{run, Clock, DriverConfig, LossInjection, Outputs, StdinLine};
use crate::identity::{installation_id, load_identity, IdentitySource, IDENTITY_MARKER_FILE};
use crate::keystore::cli::{read_passphrase_file, PASSPHRASE_ENV};
use crate::keystore::{LIGHT_SCRYPT, STANDARD_SCRYPT};
use crate::nodekey::{parse_nodekey, write_nodekey, NODEKEY_FILE};
use crate::output::MESSAGES_FILE;
use crate::sqlcipher::StorePassphrase;
use crate::store::{ChatKind, NodeStore, STORE_FILE};

/// Stdin lines read ahead of the driver at most.
pub const STDIN_LINES_QUEUED: usize = 1024;

/// Smallest `--redial-max-ms`. The redial wait never exceeds this cap, so a cap of 0 redialed a
/// peer that refuses connections in a busy loop (43,121 dials in 5 s); 100 ms is at most ten
/// dials a second per static peer.
pub const MIN_REDIAL_MAX_MS: u64 = 100;

/// Smallest `--message-ttl-secs`: Whisper drops an envelope whose TTL is 0 at once.
pub const MIN_MESSAGE_TTL_SECS: u32 = 1;

/// Smallest `--mailserver-max-envelopes`: with 0 the mailserver would keep nothing to answer
/// history requests from.
pub const MIN_MAILSERVER_MAX_ENVELOPES: usize = 1;

/// Arguments of `hush node`.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Data directory (created if absent): `node.sqlite`, `archive.sqlite`, and without a
    /// passphrase `nodekey` and `messages.jsonl`.
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
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = parse_at_least(MIN_MAILSERVER_MAX_ENVELOPES, "the mailserver would keep nothing to answer from"))]
    pub mailserver_max_envelopes: usize,
    /// File whose first line is the passphrase sealing the identity and encrypting the store
    /// (else $HUSH_PASSPHRASE; with neither, the identity stays in the plaintext `nodekey` file
    /// and the store is plaintext).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Seal a new identity with geth's --lightkdf scrypt parameters (fast, weaker).
    #[arg(long)]
    pub light_kdf: bool,
    /// Send 1:1 and group messages through MVDS (acknowledged, retransmitted until acked).
    #[arg(long)]
    pub datasync: bool,
    /// Give this device its own devp2p node key (drawn once, kept in the store) and use the
    /// identity only as the chat identity: needed to run several devices of one identity
    /// (peers keep one connection per node key). Pair them with /devices and /pair.
    #[arg(long)]
    pub device_key: bool,
    /// MVDS retransmission schedule: `status-go` (the 2019 default: each wait about doubles
    /// the time since start, so a message lost a few times waits minutes), `linear`
    /// (vacp2p/mvds HEAD: 2·count epochs) or `exponential:CAP_MS` (one epoch, doubling, at
    /// most CAP_MS).
    #[arg(long, value_name = "SCHEDULE", default_value = "status-go", value_parser = parse_retransmission)]
    pub datasync_retransmission: Retransmission,
    /// Application-layer form sent in chats: `transit` (status-go ≤ v0.36.0 and status-react
    /// read only this), `protobuf` (status-go ≥ 0.36.2, the Status v1 app, reads only this) or
    /// `auto` (each chat in the form last received in it, Transit before that). Both forms
    /// are always received; `/format` overrides it per chat.
    #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = parse_payload_format)]
    pub payload_format: FormatSetting,
    /// Whisper TTL of the envelopes this node posts, seconds (Status: 10; at least 1).
    #[arg(long, value_name = "SECS", default_value_t = hush_core::chat::service::DEFAULT_TTL_SECS,
          value_parser = parse_at_least(MIN_MESSAGE_TTL_SECS, "Whisper drops an envelope with TTL 0 at once"))]
    pub message_ttl_secs: u32,
    /// Longest wait between redials of a lost static peer, ms (the wait starts at 1 s and
    /// doubles per failed or short-lived connection; at least 100).
    #[arg(long, value_name = "MS", default_value_t = hush_core::p2p::peers::Config::default().redial_max_backoff_ms,
          value_parser = parse_at_least(MIN_REDIAL_MAX_MS, "a lower cap redials a peer that refuses connections in a busy loop"))]
    pub redial_max_ms: u64,
    /// Timed commands to run, a file of `AT_MS COMMAND` lines (AT_MS = ms since the node
    /// started listening; COMMAND = a stdin command; `#` comments; times must not decrease).
    /// Checked whole before the node starts. Works with or without stdin; the node keeps
    /// running after the script ends, until `/quit` or SIGINT/SIGTERM.
    #[arg(long, value_name = "FILE", value_parser = crate::script::parse_script_arg)]
    pub script: Option<crate::script::Script>,
    /// The address this node advertises in its enode URL (startup line, /whoami), as geth
    /// spells it: `extip:IP` (e.g. behind NAT, or listening on 0.0.0.0), or `none` / `any`
    /// (the listen address; hush does no UPnP or NAT-PMP).
    #[arg(long, value_name = "SPEC", default_value = "none", value_parser = parse_nat)]
    pub nat: Nat,
    /// geth's --nodekey: a file holding the node's secp256k1 secret as 64 hex characters. A
    /// data dir without an identity adopts it (sealed if a passphrase is given); one holding
    /// another identity is an error.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["nodekeyhex", "device_key"])]
    pub nodekey: Option<PathBuf>,
    /// geth's --nodekeyhex: the secret as 64 hex characters, same rules as --nodekey (other
    /// local users can read a process's arguments: prefer --nodekey FILE).
    #[arg(long, value_name = "HEX", conflicts_with = "device_key")]
    pub nodekeyhex: Option<SecretHex>,
    /// Testing: probability that an outgoing chunk is lost (its connection then fails and the
    /// network stays down for --inject-outage-ms). 0 = off.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub inject_loss: f64,
    /// Testing: how long the network stays down after an injected loss, ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub inject_outage_ms: u64,
    /// Testing: seed of the injected-loss draws.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub inject_seed: u64,
    /// Testing: exit right after the Nth store commit that holds received messages, before
    /// printing them (a kill in the commit → print window). 0 = off.
    #[arg(long, value_name = "N", default_value_t = 0, hide = true)]
    pub inject_crash_after_commits: u64,
    /// JSON-RPC server (`--http`, `--ws` and their guards).
    #[command(flatten)]
    pub rpc: crate::rpc::args::RpcArgs,
}

/// Runs `hush node` with real stdin/stdout/stderr until `/quit`.
pub fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let store_path = args.data_dir.join(STORE_FILE);
    let env = std::env::var(PASSPHRASE_ENV).ok();
    let passphrase = match (&args.passphrase_file, env) {
        (Some(f), _) => Some(read_passphrase_file(f)?),
        (None, Some(e)) => Some(e),
        (None, None) => None,
    };
    let store_passphrase = passphrase
        .as_deref()
        .map(StorePassphrase::new)
        .transpose()?;
    let store = NodeStore::open_keyed(&store_path, store_passphrase.as_ref())?;
    let kdf = if args.light_kdf {
        LIGHT_SCRYPT
    } else {
        STANDARD_SCRYPT
    };
    let given_key = given_node_key(&args)?;
    if let Some(key) = &given_key {
        adopt_given_key(&args.data_dir, &store, key)?;
    }
    let (secret_key, source) = load_identity(
        &args.data_dir,
        &store,
        passphrase.as_deref(),
        kdf,
        false,
        &mut OsRng,
    )?;
    if let Some(key) = &given_key {
        refuse_other_identity(&args.data_dir, key, &secret_key)?;
    }
    if source == IdentitySource::Plaintext {
        eprintln!(
            "hush: warning: identity is not sealed at rest ({}) and {} is not encrypted; give --passphrase-file or set {PASSPHRASE_ENV}",
            args.data_dir.join(crate::nodekey::NODEKEY_FILE).display(),
            store_path.display()
        );
    }
    let jsonl = args.data_dir.join(MESSAGES_FILE);
    if store_passphrase.is_some() && jsonl.exists() {
        // Written before the store was encrypted; not deleted behind the user's back.
        eprintln!(
            "hush: warning: {} is a plaintext export of public messages written without a passphrase; hush no longer appends to it, delete it to keep them off the disk",
            jsonl.display()
        );
    }
    let installation_id = installation_id(&store, &mut OsRng)?;
    let (node_key, chat_identity) = if args.device_key {
        (device_node_key(&store)?, Some(secret_key))
    } else {
        (secret_key, None)
    };
    let records = store.records()?;
    let public_chats: Vec<String> = store
        .chats()?
        .into_iter()
        .filter(|c| c.kind == ChatKind::Public)
        .map(|c| c.id)
        .collect();
    let public_messages = store.public_messages()?;
    let clock = Clock::new();
    let now_secs = clock.now().as_millis() / 1000;
    let own_envelopes = store.own_envelopes(now_secs)?;
    drop(store);
    // Fresh on every start, even a restart: a replayed RNG stream would repeat ephemeral keys.
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);

    smol::block_on(async move {
        let listener = smol::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding --listen {}", args.listen))?;
        let local = listener.local_addr().context("listener address")?;
        let port = local.port();
        let advertised_ip = args.nat.advertised_ip(local.ip());
        if advertised_ip.is_unspecified() {
            eprintln!(
                "hush: warning: listening on {local} without --nat extip:IP: the enode URL names {advertised_ip}, which other hosts cannot dial; give --nat extip:<this host's IP>"
            );
        }
        let mut config = NodeConfig {
            listen_port: port,
            mailservers: args.mailserver_peers.iter().map(|e| e.public_key).collect(),
            installation_id: installation_id.clone(),
            chat_identity,
            ..NodeConfig::default()
        };
        config.conversations.datasync = args.datasync;
        config.conversations.payload_format = args.payload_format;
        config.conversations.mvds.retransmission = args.datasync_retransmission;
        config.chat.ttl_secs = args.message_ttl_secs;
        config.peers.redial_max_backoff_ms = args.redial_max_ms;
        config.peers.redial_initial_backoff_ms = config
            .peers
            .redial_initial_backoff_ms
            .min(args.redial_max_ms);
        if args.mailserver {
            config.whisper.mailserver = Some(MailserverConfig {
                max_archive_envelopes: args.mailserver_max_envelopes,
                ..MailserverConfig::default()
            });
        }
        let now = clock.now();
        let restored = records.len();
        let mut node = if records.is_empty() {
            Node::new(config, node_key, seed, now)
        } else {
            Node::restore(config, node_key, seed, now, records)
        }
        .context("creating the node")?;
        for name in &public_chats {
            node.handle_command(now, Command::JoinPublicChat { name: name.clone() })
                .with_context(|| format!("rejoining {name}"))?;
        }
        for m in &public_messages {
            node.restore_public_message(m);
        }
        for raw in &own_envelopes {
            // An envelope that no longer fits the pool is reported, not fatal.
            if let Err(e) = node.restore_own_envelope(now, raw) {
                eprintln!("hush: could not re-post a stored envelope: {e}");
            }
        }
        if restored > 0 || !public_chats.is_empty() {
            eprintln!(
                "hush: restored records={restored} public_chats={} public_messages={} own_envelopes={}",
                public_chats.len(),
                public_messages.len(),
                own_envelopes.len()
            );
        }
        if args.mailserver {
            let store = ArchiveStore::open_keyed(
                &args.data_dir.join(ARCHIVE_FILE),
                store_passphrase.as_ref(),
            )?;
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

        let (line_tx, line_rx) = smol::channel::bounded::<StdinLine>(STDIN_LINES_QUEUED);
        // `--script` commands take the stdin lines' path (same parser, same back-pressure).
        let script_tx = line_tx.clone();
        // Reading stdin blocks; `Unblock` moves it to a thread. Dropping `line_tx` at EOF (and
        // the script's sender at its end) closes the channel, which the driver treats as "no
        // more commands", not as quit.
        let stdin_task = smol::spawn(forward_stdin(
            smol::io::BufReader::new(smol::Unblock::new(std::io::stdin())),
            line_tx,
        ));
        // SIGINT/SIGTERM stop the node like /quit (Disconnect ClientQuitting to every peer).
        let (stop_tx, stop_rx) = smol::channel::bounded::<String>(1);
        let mut signals =
            async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])
                .context("installing the SIGINT/SIGTERM handlers")?;
        let signal_task = smol::spawn(async move {
            while let Some(Ok(signal)) = signals.next().await {
                let name = match signal {
                    async_signal::Signal::Int => "SIGINT",
                    async_signal::Signal::Term => "SIGTERM",
                    _ => "signal",
                };
                if stop_tx.send(name.to_string()).await.is_err() {
                    break;
                }
            }
        });
        // The JSON-RPC server, if asked; its tasks live as long as the node.
        let (_rpc_tasks, rpc_inputs) = match args.rpc.config() {
            Some(config) => {
                let (tasks, bound, inputs) = crate::rpc::start(config).await?;
                for (kind, addr) in bound {
                    eprintln!("hush: {kind} rpc listening on {addr}");
                }
                (tasks, Some(inputs))
            }
            None => (Vec::new(), None),
        };
        let driver_config = DriverConfig {
            data_dir: args.data_dir.clone(),
            peers,
            join: args.join.clone(),
            json: args.json,
            archive_path: None,
            store_path: Some(store_path),
            installation_id,
            loss: (args.inject_loss > 0.0).then_some(LossInjection {
                probability: args.inject_loss,
                outage_ms: args.inject_outage_ms,
                seed: args.inject_seed,
            }),
            stop_requests: Some(stop_rx),
            advertised_ip: Some(advertised_ip),
            crash_after_delivery_commits: (args.inject_crash_after_commits > 0)
                .then_some(args.inject_crash_after_commits),
            store_passphrase,
            rpc: rpc_inputs,
        };
        let io = Outputs {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
        };
        // AT_MS counts from here, just before the enode line.
        let script_task = args.script.clone().map(|script| {
            smol::spawn(crate::script::feed_script(
                script,
                std::time::Instant::now(),
                script_tx.clone(),
            ))
        });
        drop(script_tx);
        let result = run(node, listener, clock, driver_config, line_rx, io).await;
        drop(script_task);
        drop(stdin_task);
        drop(signal_task);
        result
    })
}

/// Reads `input` a line at a time (as bytes: a line that is not UTF-8 is passed on as
/// [`StdinLine::NotUtf8`], to be reported and skipped, and reading goes on) and sends the lines
/// to `lines` until EOF, a read error (reported on stderr) or the receiver is gone.
pub async fn forward_stdin(
    mut input: impl AsyncBufRead + Unpin,
    lines: smol::channel::Sender<StdinLine>,
) {
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                eprintln!("hush: error: reading stdin: {e}; no more commands");
                return;
            }
        }
        number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let line = match String::from_utf8(std::mem::take(&mut buf)) {
            Ok(text) => StdinLine::Text(text),
            Err(e) => StdinLine::NotUtf8 {
                number,
                bytes: e.as_bytes().len(),
            },
        };
        if lines.send(line).await.is_err() {
            return;
        }
    }
}

/// `meta` key of this device's own devp2p node key (`--device-key`).
pub const DEVICE_NODE_KEY: &str = "device_node_key";

/// This device's devp2p node key, drawn once and kept in the store's `meta` (hex). Like geth's
/// `nodekey` it is not sealed: it only names the node on the network, the chat identity stays
/// sealed.
fn device_node_key(store: &NodeStore) -> anyhow::Result<[u8; 32]> {
    if let Some(hex_key) = store.meta(DEVICE_NODE_KEY)? {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&hex_key, &mut key).context("store: device node key")?;
        secp256k1::SecretKey::from_byte_array(&key).context("store: device node key")?;
        return Ok(key);
    }
    loop {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        if secp256k1::SecretKey::from_byte_array(&key).is_ok() {
            store.set_meta(DEVICE_NODE_KEY, &hex::encode(key))?;
            return Ok(key);
        }
    }
}

/// `--nat`: which IP the node advertises (see [`NodeArgs::nat`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// `none` or `any`: the listen address.
    ListenAddress,
    /// `extip:IP`.
    ExtIp(IpAddr),
}

impl Nat {
    /// The IP to advertise for a node listening on `listen_ip`.
    pub fn advertised_ip(self, listen_ip: IpAddr) -> IpAddr {
        match self {
            Nat::ListenAddress => listen_ip,
            Nat::ExtIp(ip) => ip,
        }
    }
}

/// Parses `--nat` as geth spells it: `extip:IP`, `none`, `any` (the mechanism in any case).
/// geth's `any` also tries UPnP and NAT-PMP; hush does neither, so `upnp` and `pmp` are
/// refused rather than silently ignored.
pub fn parse_nat(s: &str) -> Result<Nat, String> {
    let (mechanism, rest) = match s.split_once(':') {
        Some((m, r)) => (m.to_ascii_lowercase(), Some(r)),
        None => (s.to_ascii_lowercase(), None),
    };
    match (mechanism.as_str(), rest) {
        ("none" | "any" | "", None) => Ok(Nat::ListenAddress),
        ("extip", Some(ip)) => match ip.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => Err(format!(
                "extip:{ip} is not an address peers can dial; give this host's IP"
            )),
            Ok(ip) => Ok(Nat::ExtIp(ip)),
            Err(_) => Err(format!("extip: expected an IP address, got {ip:?}")),
        },
        ("upnp" | "pmp", _) => Err(format!(
            "{mechanism}: hush does no UPnP or NAT-PMP; give extip:IP (or none)"
        )),
        _ => Err(format!("expected extip:IP, none or any, got {s:?}")),
    }
}

/// A secret given on the command line (`--nodekeyhex`): its `Debug` never shows it, and
/// it is parsed after the arguments so that a malformed one is never echoed by clap.
#[derive(Clone)]
pub struct SecretHex(String);

impl std::fmt::Debug for SecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHex(<redacted>)")
    }
}

impl std::str::FromStr for SecretHex {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<SecretHex, Self::Err> {
        Ok(SecretHex(s.to_string()))
    }
}

/// The key `--nodekey FILE` or `--nodekeyhex HEX` gives, if any. Errors name the flag or the
/// file, never the secret.
pub fn given_node_key(args: &NodeArgs) -> anyhow::Result<Option<[u8; 32]>> {
    if let Some(file) = &args.nodekey {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--nodekey {}", file.display()))?;
        return Ok(Some(parse_nodekey(&text, file)?));
    }
    if let Some(SecretHex(hex_key)) = &args.nodekeyhex {
        return Ok(Some(parse_nodekey(hex_key, Path::new("--nodekeyhex"))?));
    }
    Ok(None)
}

/// Gives a data dir without an identity the key of `--nodekey`/`--nodekeyhex`, as the
/// plaintext `nodekey` that [`load_identity`] then uses (and seals, with a passphrase). A dir
/// whose identity is lost ([`IDENTITY_MARKER_FILE`]) takes it back only if it is that same
/// identity. A dir that holds an identity is left alone: [`refuse_other_identity`] compares.
pub fn adopt_given_key(data_dir: &Path, store: &NodeStore, key: &[u8; 32]) -> anyhow::Result<()> {
    let plain = data_dir.join(NODEKEY_FILE);
    if store.sealed_identity()?.is_some() || plain.exists() {
        return Ok(());
    }
    let given = address_hex(key)?;
    match std::fs::read_to_string(data_dir.join(IDENTITY_MARKER_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("reading {IDENTITY_MARKER_FILE}"))
        }
        Ok(held) if held.trim() != given => anyhow::bail!(
            "the key given (identity {given}) is not the identity {} held ({}); refusing to replace it. Use another --data-dir, or start over knowingly with `hush key new --replace-identity`",
            held.trim(),
            data_dir.display()
        ),
        _ => {}
    }
    write_nodekey(data_dir, key)?;
    Ok(())
}

/// Fails when the data dir's identity is not the key `--nodekey`/`--nodekeyhex` gave.
pub fn refuse_other_identity(
    data_dir: &Path,
    given: &[u8; 32],
    held: &[u8; 32],
) -> anyhow::Result<()> {
    if given == held {
        return Ok(());
    }
    anyhow::bail!(
        "the key given (identity {}) is not the identity {} holds ({}); refusing to replace it. Use another --data-dir, or move the identity there with `hush key export`/`import`",
        address_hex(given)?,
        data_dir.display(),
        address_hex(held)?
    )
}

fn address_hex(secret: &[u8; 32]) -> anyhow::Result<String> {
    Ok(format!(
        "0x{}",
        hex::encode(crate::keystore::address_of_secret(secret)?)
    ))
}

/// A clap parser for a number flag that must be at least `min`; `why` says what a smaller
/// value would do, for the error message (issue 16: `--redial-max-ms 0` redialed in a loop).
pub fn parse_at_least<T>(
    min: T,
    why: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |s: &str| {
        let v: T = s
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number, got {s:?}"))?;
        if v < min {
            return Err(format!("must be at least {min} ({why})"));
        }
        Ok(v)
    }
}

/// Parses `--inject-loss`: a probability in [0, 1].
pub fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a probability within [0, 1], got {s:?}")),
    }
}

/// Parses `--payload-format` (see [`NodeArgs::payload_format`]).
pub fn parse_payload_format(s: &str) -> Result<FormatSetting, String> {
    FormatSetting::parse(s).ok_or_else(|| format!("expected transit, protobuf or auto, got {s:?}"))
}

/// Parses `--datasync-retransmission` (see [`NodeArgs::datasync_retransmission`]).
pub fn parse_retransmission(s: &str) -> Result<Retransmission, String> {
    let epoch_ms = hush_core::mvds::Config::default().epoch_interval_ms;
    match s {
        "status-go" => Ok(Retransmission::StatusGo),
        "linear" => Ok(Retransmission::Linear),
        _ => {
            let cap_ms: u64 = s
                .strip_prefix("exponential:")
                .and_then(|c| c.parse().ok())
                .filter(|c| *c >= epoch_ms)
                .ok_or_else(|| {
                    format!(
                        "expected status-go, linear or exponential:CAP_MS (CAP_MS >= {epoch_ms}), got {s:?}"
                    )
                })?;
            Ok(Retransmission::Exponential {
                base_epochs: 1,
                cap_epochs: cap_ms / epoch_ms,
            })
        }
    }
}

#[cfg(test)]
mod tests;
