//! The smol TCP driver: moves bytes, time and commands between the OS and a [`Stack`]
//! (in production `hush_core::node::Node`).
//!
//! Contract: [`run`] owns the stack and is its only caller. It makes exactly one `handle_*` call
//! per input (an accepted or dialed connection, a chunk of bytes, a closed socket, a stdin line,
//! the timer), then drains `poll_action` until `None`, performing each action in order:
//! `Send` → the connection's writer task, `Close` → the writer closes the socket after the bytes
//! queued before it, `Persist` → appended to `DATA_DIR/messages.jsonl` before the next action is
//! performed (a failure to persist stops the driver with an error; `Persist::Envelope` goes to
//! the SQLite archive `DATA_DIR/archive.sqlite` instead), `Event` → stdout/stderr.
//! Then it arms a timer at `poll_timeout` and waits for the timer or the next input. It never
//! branches on protocol state.
//!
//! `now` is the wall clock read once at start plus a monotonic elapsed time ([`Clock`]), so it
//! never goes backwards even if the system clock is stepped.
//!
//! Tasks: one accept loop, one single-attempt dialer per `Action::Dial` (the node owns static
//! peers, redial and back-off; the driver reports a failed attempt with `handle_dial_failed`),
//! one stdin forwarder, and a reader and a writer per connection. They talk to the loop through one bounded channel ([`INPUT_QUEUE_CAPACITY`]), so
//! a slow node applies back-pressure to the sockets instead of buffering without limit.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_io::Timer;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use hush_core::node::{
    Action, Command, ConnId, Direction, Event, Node, NodeError, NodePublicKey, Persist,
};
use hush_core::p2p::enode::Enode;
use hush_core::Time;
use smol::channel::{Receiver, Sender};
use smol::net::{TcpListener, TcpStream};
use smol::Task;

use crate::archive::{ArchiveStore, ARCHIVE_FILE};
use crate::commands::{parse_line, parse_public_key, GroupChange, StdinCommand};
use crate::output::{
    kind_human_line, kind_json_line, persist_json_line, reply_json_line, status_line, wire_key_hex,
    MESSAGES_FILE,
};
use crate::store::{ChatKind, NodeStore, STORE_FILE};

/// Prefix of the stderr line printed for each chunk lost by injection.
pub const INJECTED_LOSS_PREFIX: &str = "hush: injected loss";

/// Prefix of the stderr line printed when a group is created, learned or changed.
pub const GROUP_UPDATED_PREFIX: &str = "hush: group updated";

/// Bytes read from a socket per read call: 64 KiB, enough for a typical RLPx frame batch.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Inputs waiting for the node loop. At most this many chunks (≤ 64 KiB each) are buffered
/// before readers stop reading and TCP flow control pushes back on the peers.
pub const INPUT_QUEUE_CAPACITY: usize = 256;

/// Bytes queued for one connection's writer before the driver gives up on that peer and closes
/// it: a peer that does not read is not allowed to make us buffer without limit. 8 MiB is several
/// maximum-size Whisper envelopes (1 MiB each by default) in flight.
pub const MAX_WRITE_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// The state machine the driver runs. `hush_core::node::Node` implements it; tests use a fake.
/// The methods mean exactly what `Node`'s do (see `hush_core::node`).
pub trait Stack {
    /// Our public key in wire form.
    fn public_key(&self) -> NodePublicKey;
    /// A new connection.
    fn handle_connection(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
    ) -> Result<(), NodeError>;
    /// A new connection whose remote IP is known (per-IP rate limits); defaults to
    /// [`Self::handle_connection`].
    fn handle_connection_from(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
        ip: IpAddr,
    ) -> Result<(), NodeError> {
        let _ = ip;
        self.handle_connection(now, conn, direction)
    }
    /// Asks a mailserver for a chat's history (see `Node::request_history`); the default
    /// refuses (stacks without a mailserver client).
    fn request_history(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
    ) -> Result<(), NodeError> {
        let _ = (now, chat, since_secs);
        Err(NodeError::NoMailserver)
    }
    /// Our chat identity's public key (what contacts address 1:1 messages to); defaults to
    /// [`Self::public_key`].
    fn chat_public_key(&self) -> NodePublicKey {
        self.public_key()
    }
    /// Counters for `/stats` as `(layer.name, value)`; the default has none.
    fn stats(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Our other devices: `(installation id, paired)`; the default knows none.
    fn own_devices(&self) -> Vec<(String, bool)> {
        Vec::new()
    }
    /// Bytes received on a connection.
    fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]);
    /// A connection's socket closed.
    fn handle_connection_closed(&mut self, now: Time, conn: ConnId);
    /// An application command.
    fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError>;
    /// Timers.
    fn handle_timeout(&mut self, now: Time);
    /// The next output.
    fn poll_action(&mut self) -> Option<Action>;
    /// The next deadline.
    fn poll_timeout(&self) -> Option<Time>;
    /// A dial the stack asked for (`Action::Dial`) could not connect.
    fn handle_dial_failed(&mut self, now: Time, conn: ConnId);
}

impl Stack for Node {
    fn public_key(&self) -> NodePublicKey {
        Node::public_key(self)
    }
    fn handle_connection(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
    ) -> Result<(), NodeError> {
        Node::handle_connection(self, now, conn, direction)
    }
    fn handle_connection_from(
        &mut self,
        now: Time,
        conn: ConnId,
        direction: Direction,
        ip: IpAddr,
    ) -> Result<(), NodeError> {
        Node::handle_connection_from(self, now, conn, direction, ip)
    }
    fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        Node::handle_bytes(self, now, conn, bytes)
    }
    fn chat_public_key(&self) -> NodePublicKey {
        Node::chat_public_key(self)
    }
    fn own_devices(&self) -> Vec<(String, bool)> {
        Node::own_devices(self)
    }
    /// Every counter of every layer (`hush_core::node::Node::counters`).
    fn stats(&self) -> Vec<(String, u64)> {
        Node::counters(self)
    }
    fn request_history(
        &mut self,
        now: Time,
        chat: &str,
        since_secs: Option<u64>,
    ) -> Result<(), NodeError> {
        Node::request_history(self, now, chat, since_secs, None)
    }
    fn handle_connection_closed(&mut self, now: Time, conn: ConnId) {
        Node::handle_connection_closed(self, now, conn)
    }
    fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError> {
        Node::handle_command(self, now, command)
    }
    fn handle_timeout(&mut self, now: Time) {
        Node::handle_timeout(self, now)
    }
    fn poll_action(&mut self) -> Option<Action> {
        Node::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Time> {
        Node::poll_timeout(self)
    }
    fn handle_dial_failed(&mut self, now: Time, conn: ConnId) {
        // Err only for a conn the node does not know: then there is nothing to retry.
        let _ = Node::handle_dial_failed(self, now, conn);
    }
}

/// Wall-clock time as a monotonic function: the Unix time read once at start plus the
/// monotonic time elapsed since.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start_instant: Instant,
    start_time: Time,
}

impl Clock {
    /// Reads the system clock and the monotonic clock once.
    pub fn new() -> Clock {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Clock {
            start_instant: Instant::now(),
            start_time: Time(u64::try_from(unix_ms).unwrap_or(u64::MAX)),
        }
    }

    /// The current time, never going backwards.
    pub fn now(&self) -> Time {
        let elapsed_ms =
            u64::try_from(self.start_instant.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.start_time.plus_millis(elapsed_ms)
    }

    /// The monotonic instant at which [`Clock::now`] reaches `t` (now or earlier → start).
    pub fn instant_at(&self, t: Time) -> Instant {
        let ms = t.millis_since(self.start_time);
        self.start_instant
            .checked_add(std::time::Duration::from_millis(ms))
            // Beyond what Instant can represent: a year from now is as good as never.
            .unwrap_or_else(|| self.start_instant + std::time::Duration::from_secs(365 * 24 * 3600))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// What [`run`] needs besides the stack.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Where `messages.jsonl` is appended.
    pub data_dir: PathBuf,
    /// Static peers: handed to the node (`Command::AddStaticPeer`), which dials them through
    /// `Action::Dial` and redials with its own capped back-off (core::p2p::peers).
    pub peers: Vec<Enode>,
    /// Public chats to join at start.
    pub join: Vec<String>,
    /// Print received messages as JSON lines.
    pub json: bool,
    /// Where `Persist::Envelope` records go (the mailserver archive); opened on first use.
    /// `None` = `DATA_DIR/archive.sqlite`.
    pub archive_path: Option<PathBuf>,
    /// The node store (conversation records, history, chats); `None` =
    /// `DATA_DIR/node.sqlite`. Opened at start.
    pub store_path: Option<PathBuf>,
    /// This device's installation id (shown by `/whoami`).
    pub installation_id: String,
    /// Fault injection for tests (`None` in production).
    pub loss: Option<LossInjection>,
}

/// Link loss injected by the driver (tests and experiments; see `hush node --inject-loss`).
///
/// An RLPx stream cannot lose a chunk and stay valid (every frame's MAC chains on the previous
/// ones), so a lost chunk is a failed path: the driver drops the chunk, closes that connection
/// and keeps the network down for `outage_ms` (dials wait for the end of the outage, as a TCP
/// connect over a dead path would; inbound connections are closed). An outage longer than the
/// Whisper TTL of the envelopes in flight loses them for good: what MVDS exists to repair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossInjection {
    /// Probability that an outgoing chunk is lost, in `[0, 1]`.
    pub probability: f64,
    /// How long the network stays down after a loss, ms.
    pub outage_ms: u64,
    /// Seed of the loss draws (reproducible schedules of draws).
    pub seed: u64,
}

/// Where [`run`] writes: `out` is stdout (enode line, messages), `err` is stderr (status).
pub struct Outputs {
    /// Machine-readable output.
    pub out: Box<dyn Write>,
    /// Status and errors.
    pub err: Box<dyn Write>,
}

enum Input {
    Accepted {
        stream: TcpStream,
        addr: SocketAddr,
    },
    AcceptFailed(String),
    /// A dial the node asked for (`Action::Dial`) connected.
    CoreDialed {
        conn: ConnId,
        stream: TcpStream,
        enode: Enode,
    },
    /// A dial the node asked for failed; the node decides about retrying.
    CoreDialFailed {
        conn: ConnId,
        enode: Enode,
        error: String,
    },
    Bytes {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    Closed {
        conn: ConnId,
    },
    Line(String),
    StdinClosed,
}

enum WriteCmd {
    Bytes(Vec<u8>),
    Close,
}

struct Conn {
    writer: Sender<WriteCmd>,
    queued_bytes: Arc<AtomicUsize>,
    closing: bool,
    _reader: Task<()>,
    _writer: Task<()>,
}

/// Runs the node until `/quit` (a [`StdinCommand::Quit`] line) or a fatal error.
///
/// Prints the enode (`stack.public_key()` at `listener`'s address) as the first `out` line.
/// `lines` delivers stdin lines; its closing (EOF) does not stop the node.
pub async fn run<S: Stack>(
    stack: S,
    listener: TcpListener,
    clock: Clock,
    config: DriverConfig,
    lines: Receiver<String>,
    mut io: Outputs,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("listener address")?;
    let enode = Enode::new(stack.public_key(), local);
    writeln!(io.out, "{enode}").context("stdout")?;
    io.out.flush().context("stdout")?;
    tracing::info!(%local, "listening");

    let (tx, rx) = smol::channel::bounded::<Input>(INPUT_QUEUE_CAPACITY);
    let tasks: Vec<Task<()>> = vec![
        smol::spawn(accept_loop(listener, tx.clone())),
        smol::spawn(forward_lines(lines, tx.clone())),
    ];

    let mut driver = Driver {
        stack,
        clock,
        conns: BTreeMap::new(),
        next_conn: 1,
        tx,
        io,
        persist_path: config.data_dir.join(MESSAGES_FILE),
        persist_file: None,
        archive_path: config
            .archive_path
            .clone()
            .unwrap_or_else(|| config.data_dir.join(ARCHIVE_FILE)),
        archive: None,
        store: NodeStore::open(
            &config
                .store_path
                .clone()
                .unwrap_or_else(|| config.data_dir.join(STORE_FILE)),
        )?,
        enode,
        installation_id: config.installation_id.clone(),
        loss: config.loss.map(|l| LossState {
            config: l,
            rng: hush_core::rng::rng_from_seed(hush_core::rng::seed_from_u64(l.seed)),
            outage_until: None,
            dropped_chunks: 0,
        }),
        json: config.json,
        quit: false,
    };
    // A restored node may have queued records and re-encrypted posts: commit them first.
    driver.drain()?;

    for peer in &config.peers {
        let now = driver.clock.now();
        if let Err(e) = driver
            .stack
            .handle_command(now, Command::AddStaticPeer(*peer))
        {
            anyhow::bail!("--peer {peer}: {e}");
        }
        driver.drain()?;
    }

    for name in &config.join {
        let now = driver.clock.now();
        if let Err(e) = driver
            .stack
            .handle_command(now, Command::JoinPublicChat { name: name.clone() })
        {
            anyhow::bail!("--join {name}: {e}");
        }
        driver.drain()?;
    }

    while !driver.quit {
        let deadline = driver.stack.poll_timeout();
        let timer = async {
            match deadline {
                Some(t) => {
                    Timer::at(driver.clock.instant_at(t)).await;
                }
                None => std::future::pending::<()>().await,
            }
            None
        };
        let next = async { Some(rx.recv().await) }.or(timer).await;
        match next {
            // We hold a sender, so the channel never closes.
            Some(Ok(input)) => driver.handle_input(input)?,
            Some(Err(_)) => break,
            None => {
                let now = driver.clock.now();
                driver.stack.handle_timeout(now);
            }
        }
        driver.drain()?;
    }
    drop(tasks);
    Ok(())
}

struct Driver<S> {
    stack: S,
    clock: Clock,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    tx: Sender<Input>,
    io: Outputs,
    persist_path: PathBuf,
    persist_file: Option<File>,
    archive_path: PathBuf,
    archive: Option<ArchiveStore>,
    store: NodeStore,
    enode: Enode,
    installation_id: String,
    loss: Option<LossState>,
    json: bool,
    quit: bool,
}

struct LossState {
    config: LossInjection,
    rng: hush_core::rng::Rng,
    outage_until: Option<Instant>,
    dropped_chunks: u64,
}

impl LossState {
    /// The end of the current outage, if one is going on.
    fn outage(&mut self) -> Option<Instant> {
        match self.outage_until {
            Some(t) if t > Instant::now() => Some(t),
            _ => {
                self.outage_until = None;
                None
            }
        }
    }

    /// Draws whether the next chunk is lost.
    fn lose(&mut self) -> bool {
        use rand_core::RngCore as _;
        // 53 random bits as a uniform f64 in [0, 1).
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < self.config.probability
    }
}

impl<S: Stack> Driver<S> {
    fn err_line(&mut self, line: &str) {
        // Best effort: a closed stderr must not stop the node.
        let _ = writeln!(self.io.err, "{line}");
        let _ = self.io.err.flush();
    }

    fn out_line(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.io.out, "{line}").context("stdout")?;
        self.io.out.flush().context("stdout")
    }

    fn new_conn(&mut self, stream: TcpStream, direction: Direction, ip: Option<IpAddr>) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.attach_conn(conn, stream, direction, ip);
    }

    /// Starts the reader and writer of `stream` as connection `conn` and tells the stack
    /// (with the remote IP when known, for per-IP rate limits).
    fn attach_conn(
        &mut self,
        conn: ConnId,
        stream: TcpStream,
        direction: Direction,
        ip: Option<IpAddr>,
    ) {
        let (wtx, wrx) = smol::channel::unbounded();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let reader = smol::spawn(read_loop(conn, stream.clone(), self.tx.clone()));
        let writer = smol::spawn(write_loop(
            conn,
            stream,
            wrx,
            queued_bytes.clone(),
            self.tx.clone(),
        ));
        self.conns.insert(
            conn,
            Conn {
                writer: wtx,
                queued_bytes,
                closing: false,
                _reader: reader,
                _writer: writer,
            },
        );
        let now = self.clock.now();
        let result = match ip {
            Some(ip) => self.stack.handle_connection_from(now, conn, direction, ip),
            None => self.stack.handle_connection(now, conn, direction),
        };
        if let Err(e) = result {
            self.err_line(&format!("hush: connection {conn} refused by node: {e}"));
            if let Some(c) = self.conns.remove(&conn) {
                let _ = c.writer.try_send(WriteCmd::Close);
            }
        }
    }

    fn handle_input(&mut self, input: Input) -> anyhow::Result<()> {
        let now = self.clock.now();
        match input {
            Input::Accepted { stream, addr } => {
                if self.loss.as_mut().and_then(LossState::outage).is_some() {
                    // Injected outage: the path is down, nothing gets through.
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return Ok(());
                }
                tracing::debug!(%addr, conn = self.next_conn, "accepted");
                self.new_conn(stream, Direction::Inbound, Some(addr.ip()));
            }
            Input::AcceptFailed(e) => self.err_line(&format!("hush: accept failed: {e}")),
            Input::CoreDialed {
                conn,
                stream,
                enode,
            } => {
                tracing::debug!(%enode, conn, "dialed for the node");
                self.attach_conn(
                    conn,
                    stream,
                    Direction::Outbound {
                        remote: enode.public_key,
                    },
                    Some(enode.addr.ip()),
                );
            }
            Input::CoreDialFailed { conn, enode, error } => {
                self.err_line(&format!("hush: dial {} failed: {error}", enode.addr));
                self.stack.handle_dial_failed(now, conn);
            }
            Input::Bytes { conn, bytes } => {
                if self.conns.contains_key(&conn) {
                    self.stack.handle_bytes(now, conn, &bytes);
                }
            }
            Input::Closed { conn } => {
                // The reader and the writer may both report; the first one counts.
                if self.conns.remove(&conn).is_some() {
                    self.stack.handle_connection_closed(now, conn);
                }
            }
            Input::Line(line) => match parse_line(&line) {
                Ok(None) => {}
                Ok(Some(cmd)) => {
                    if let Err(e) = self.stdin_command(now, cmd) {
                        self.err_line(&format!("hush: error: {e:#}"));
                    }
                }
                Err(e) => self.err_line(&format!("hush: error: {e}")),
            },
            Input::StdinClosed => {
                tracing::debug!("stdin closed; still running until /quit or a signal")
            }
        }
        Ok(())
    }

    /// Performs one stdin command. Errors are the user's (bad group name, node refusal) and are
    /// reported on stderr; a store failure in a command that only reads is reported too.
    fn stdin_command(&mut self, now: Time, cmd: StdinCommand) -> anyhow::Result<()> {
        match cmd {
            StdinCommand::Quit => self.quit = true,
            StdinCommand::RequestHistory { chat, since_secs } => {
                self.stack.request_history(now, &chat, since_secs)?
            }
            StdinCommand::Node(cmd) => {
                // The application's own record of what it joined (rejoined at start).
                let joined = match &cmd {
                    Command::JoinPublicChat { name } => Some((name.clone(), true)),
                    Command::SendPublicMessage { chat, .. } => Some((chat.clone(), true)),
                    Command::LeavePublicChat { name } => Some((name.clone(), false)),
                    _ => None,
                };
                self.stack.handle_command(now, cmd)?;
                match joined {
                    Some((name, true)) => self.store.upsert_chat(&name, ChatKind::Public, &name)?,
                    Some((name, false)) => self.store.leave_chat(&name)?,
                    None => {}
                }
            }
            StdinCommand::GroupAdd { group, member } => {
                let group = self.resolve_group(&group)?;
                self.stack
                    .handle_command(now, Command::AddGroupMember { group, member })?;
            }
            StdinCommand::GroupChange { group, change } => {
                let group = self.resolve_group(&group)?;
                let cmd = match change {
                    GroupChange::Remove(member) => Command::RemoveGroupMember { group, member },
                    GroupChange::Admins(members) => Command::AddGroupAdmins { group, members },
                    GroupChange::Rename(name) => Command::RenameGroup { group, name },
                    GroupChange::Leave => Command::LeaveGroup { group },
                };
                self.stack.handle_command(now, cmd)?;
            }
            StdinCommand::GroupSend { group, text } => {
                let group = self.resolve_group(&group)?;
                self.stack
                    .handle_command(now, Command::SendGroup { group, text })?;
            }
            StdinCommand::History { chat } => {
                let id = self.resolve_chat(&chat)?;
                let rows = self.store.history(&id)?;
                for row in rows {
                    let name = self.group_name(row.kind, &row.message.chat);
                    let line = if self.json {
                        kind_json_line(
                            &row.message,
                            row.kind.as_str(),
                            name.as_deref(),
                            Some("history"),
                        )
                    } else {
                        format!("history {}", self.human_line(row.kind, &row.message))
                    };
                    self.out_line(&line)?;
                }
            }
            StdinCommand::Stats => {
                let mut stats = self.stack.stats();
                if let Some(l) = &self.loss {
                    stats.push(("driver.injected_dropped_chunks".into(), l.dropped_chunks));
                }
                if self.json {
                    let mut map = serde_json::Map::new();
                    map.insert("reply".into(), "stats".into());
                    for (k, v) in stats {
                        map.insert(k, v.into());
                    }
                    self.out_line(&serde_json::Value::Object(map).to_string())?;
                } else {
                    // One `stat layer.name value` line per counter.
                    for (k, v) in stats {
                        self.out_line(&format!("stat {k} {v}"))?;
                    }
                }
            }
            StdinCommand::Devices => {
                for (id, paired) in self.stack.own_devices() {
                    let paired = if paired { "true" } else { "false" };
                    let line = if self.json {
                        reply_json_line("device", &[("installation_id", &id), ("paired", paired)])
                    } else {
                        format!("device {id} paired={paired}")
                    };
                    self.out_line(&line)?;
                }
            }
            StdinCommand::WhoAmI => {
                let key = wire_key_hex(&self.stack.chat_public_key());
                let enode = self.enode.to_string();
                let line = if self.json {
                    reply_json_line(
                        "whoami",
                        &[
                            ("public_key", &key),
                            ("enode", &enode),
                            ("installation_id", &self.installation_id),
                        ],
                    )
                } else {
                    format!(
                        "whoami public_key={key} enode={enode} installation_id={}",
                        self.installation_id
                    )
                };
                self.out_line(&line)?;
            }
            StdinCommand::Chats => {
                for chat in self.store.chats()? {
                    let line = if self.json {
                        reply_json_line(
                            "chat",
                            &[
                                ("chat", &chat.id),
                                ("kind", chat.kind.as_str()),
                                ("name", &chat.name),
                            ],
                        )
                    } else {
                        format!("chat {} {} {}", chat.kind.as_str(), chat.id, chat.name)
                    };
                    self.out_line(&line)?;
                }
            }
        }
        Ok(())
    }

    /// A group id from a group name or id (names may collide: then the id is required).
    fn resolve_group(&self, name_or_id: &str) -> anyhow::Result<String> {
        let found = self.store.find_groups(name_or_id)?;
        match found.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => anyhow::bail!("no group named {name_or_id:?} (see /chats)"),
            many => anyhow::bail!(
                "several groups are named {name_or_id:?}; use an id: {}",
                many.iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// A chat id from what the user typed: a public key (→ `0x04…`), a group name or id, or a
    /// public chat name.
    fn resolve_chat(&self, chat: &str) -> anyhow::Result<String> {
        if let Some(key) = parse_public_key(chat) {
            return Ok(wire_key_hex(&key));
        }
        match self.store.find_groups(chat)?.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Ok(chat.to_string()),
            _ => self.resolve_group(chat),
        }
    }

    fn group_name(&self, kind: ChatKind, id: &str) -> Option<String> {
        if kind != ChatKind::Group {
            return None;
        }
        self.store.chat(id).ok().flatten().map(|c| c.name)
    }

    fn human_line(&self, kind: ChatKind, m: &hush_core::node::ChatMessage) -> String {
        match kind {
            ChatKind::Public => kind_human_line(m, "#", &m.chat),
            ChatKind::Dm => kind_human_line(m, "@", &m.chat),
            ChatKind::Group => {
                let name = self
                    .group_name(kind, &m.chat)
                    .unwrap_or_else(|| m.chat.clone());
                kind_human_line(m, "%", &name)
            }
        }
    }

    fn message_line(&self, kind: ChatKind, m: &hush_core::node::ChatMessage) -> String {
        if self.json {
            let name = self.group_name(kind, &m.chat);
            kind_json_line(m, kind.as_str(), name.as_deref(), None)
        } else {
            self.human_line(kind, m)
        }
    }

    /// Performs every pending action, in order.
    fn drain(&mut self) -> anyhow::Result<()> {
        while let Some(action) = self.stack.poll_action() {
            match action {
                Action::Send { conn, bytes } => self.send(conn, bytes),
                // One attempt; the node owns redial and backoff (core::p2p::peers).
                Action::Dial { conn, enode } => {
                    let wait_until = self.loss.as_mut().and_then(LossState::outage);
                    smol::spawn(core_dial(conn, enode, self.tx.clone(), wait_until)).detach()
                }
                Action::Close { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if !c.closing {
                            c.closing = true;
                            let _ = c.writer.try_send(WriteCmd::Close);
                        }
                    }
                }
                Action::Persist(p) => self.persist(&p)?,
                Action::Event(Event::MessageReceived(m)) => {
                    let line = self.message_line(ChatKind::Public, &m);
                    self.out_line(&line)?;
                }
                Action::Event(Event::Direct(m)) => {
                    let line = self.message_line(ChatKind::Dm, &m);
                    self.out_line(&line)?;
                }
                Action::Event(Event::Group { message, .. }) => {
                    let line = self.message_line(ChatKind::Group, &message);
                    self.out_line(&line)?;
                }
                Action::Event(Event::GroupUpdated {
                    group_id,
                    members,
                    admins,
                    name,
                }) => {
                    // The group's id and name for /group and /chats: the application's
                    // index, committed before anything else happens.
                    self.store.upsert_chat(&group_id, ChatKind::Group, &name)?;
                    let me = wire_key_hex(&self.stack.chat_public_key());
                    if !members.contains(&me) {
                        // Left or removed: no longer listed (its history stays).
                        self.store.leave_chat(&group_id)?;
                    }
                    self.err_line(&format!(
                        "{GROUP_UPDATED_PREFIX} id={group_id} name={name:?} members={} admins={}",
                        members.join(","),
                        admins.join(",")
                    ));
                }
                Action::Event(e) => {
                    if let Some(line) = status_line(&e) {
                        self.err_line(&line);
                    }
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        if let Some(loss) = self.loss.as_mut() {
            if loss.lose() {
                loss.dropped_chunks += 1;
                loss.outage_until =
                    Some(Instant::now() + std::time::Duration::from_millis(loss.config.outage_ms));
                c.closing = true;
                let _ = c.writer.try_send(WriteCmd::Close);
                let dropped = loss.dropped_chunks;
                let outage = loss.config.outage_ms;
                self.err_line(&format!(
                    "{INJECTED_LOSS_PREFIX} conn={conn} bytes={} dropped_chunks={dropped} outage_ms={outage}",
                    bytes.len()
                ));
                return;
            }
        }
        let len = bytes.len();
        let queued = c.queued_bytes.fetch_add(len, Ordering::SeqCst) + len;
        if queued > MAX_WRITE_QUEUE_BYTES {
            c.closing = true;
            let _ = c.writer.try_send(WriteCmd::Close);
            self.err_line(&format!(
                "hush: conn {conn}: peer is not reading ({queued} bytes queued, max {MAX_WRITE_QUEUE_BYTES}); closing"
            ));
            return;
        }
        let _ = c.writer.try_send(WriteCmd::Bytes(bytes));
    }

    fn persist(&mut self, p: &Persist) -> anyhow::Result<()> {
        match p {
            Persist::ChatMessage(m) => {
                self.store.commit(p)?;
                self.append_jsonl(&persist_json_line(m))
            }
            Persist::Envelope {
                hash,
                sent_secs,
                topic,
                raw,
            } => {
                if self.archive.is_none() {
                    self.archive = Some(ArchiveStore::open(&self.archive_path)?);
                }
                if let Some(a) = self.archive.as_ref() {
                    a.insert(hash, *sent_secs, topic, raw)?;
                }
                Ok(())
            }
            // Conversation records carry secrets (ratchet keys): stored, never logged.
            Persist::Conversation(_) => self.store.commit(p),
            Persist::OwnEnvelope { .. } => {
                self.store.commit(p)?;
                // Keep the table to the envelopes still alive, not every post ever made.
                let now_secs = self.clock.now().as_millis() / 1000;
                self.store.prune_own_envelopes(now_secs)
            }
            _ => anyhow::bail!("a persist record this driver does not know how to store"),
        }
    }

    /// Appends one line to `messages.jsonl` (a plain-text export of public messages).
    fn append_jsonl(&mut self, line: &str) -> anyhow::Result<()> {
        if self.persist_file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.persist_path)
                .with_context(|| format!("opening {}", self.persist_path.display()))?;
            self.persist_file = Some(f);
        }
        if let Some(f) = self.persist_file.as_mut() {
            // One write call per record so concurrent readers see whole lines.
            f.write_all(format!("{line}\n").as_bytes())
                .with_context(|| format!("appending to {}", self.persist_path.display()))?;
        }
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, tx: Sender<Input>) {
    loop {
        let input = match listener.accept().await {
            Ok((stream, addr)) => Input::Accepted { stream, addr },
            Err(e) => {
                // E.g. out of file descriptors: report, pause briefly so we do not spin.
                let _ = tx.send(Input::AcceptFailed(e.to_string())).await;
                Timer::after(std::time::Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                continue;
            }
        };
        if tx.send(input).await.is_err() {
            return;
        }
    }
}

/// Pause after a failed `accept` (typically EMFILE) before trying again.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

async fn forward_lines(lines: Receiver<String>, tx: Sender<Input>) {
    while let Ok(line) = lines.recv().await {
        if tx.send(Input::Line(line)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Input::StdinClosed).await;
}

/// One connection attempt on behalf of the node (after an injected outage, if one is on).
async fn core_dial(conn: ConnId, enode: Enode, tx: Sender<Input>, wait_until: Option<Instant>) {
    if let Some(t) = wait_until {
        Timer::at(t).await;
    }
    let input = match TcpStream::connect(enode.addr).await {
        Ok(stream) => Input::CoreDialed {
            conn,
            stream,
            enode,
        },
        Err(e) => Input::CoreDialFailed {
            conn,
            enode,
            error: e.to_string(),
        },
    };
    let _ = tx.send(input).await;
}

async fn read_loop(conn: ConnId, mut stream: TcpStream, tx: Sender<Input>) {
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let bytes = buf.get(..n).unwrap_or_default().to_vec();
                if tx.send(Input::Bytes { conn, bytes }).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Input::Closed { conn }).await;
}

async fn write_loop(
    conn: ConnId,
    mut stream: TcpStream,
    cmds: Receiver<WriteCmd>,
    queued_bytes: Arc<AtomicUsize>,
    tx: Sender<Input>,
) {
    while let Ok(cmd) = cmds.recv().await {
        match cmd {
            WriteCmd::Bytes(bytes) => {
                let result = stream.write_all(&bytes).await;
                queued_bytes.fetch_sub(bytes.len(), Ordering::SeqCst);
                if result.is_err() {
                    break;
                }
            }
            WriteCmd::Close => {
                let _ = stream.flush().await;
                break;
            }
        }
    }
    // Shutting down both directions also ends the reader's pending read.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = tx.send(Input::Closed { conn }).await;
}

#[cfg(test)]
mod tests;
