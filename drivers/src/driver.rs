//! The smol TCP driver: moves bytes, time and commands between the OS and a [`Stack`]
//! (in production `hush_core::node::Node`).
//!
//! Contract: [`run`] owns the stack and is its only caller. Each turn of its loop:
//! 1. Timers first: if `poll_timeout` is due, `handle_timeout` runs before any more input is
//!    taken, so a busy input (piped stdin, a fast peer) never starves gossip, pings or MVDS
//!    retransmission; and input ready after it is still taken in the same turn, so a deadline
//!    that stays due cannot starve input either.
//! 2. Then every input already waiting, up to [`MAX_INPUTS_PER_DRAIN`], one `handle_*` call
//!    each (an accepted or dialed connection, a chunk of bytes, a closed socket, a stdin line).
//! 3. Then one drain: `poll_action` until `None`, and **group commit**: every `Persist` of the
//!    drain (with the chat-index changes of the turn) is committed in one SQLite transaction
//!    (`DATA_DIR/node.sqlite`, [`crate::store`]; `Persist::Envelope` → one transaction of the
//!    mailserver archive `DATA_DIR/archive.sqlite`) before ANY action of the drain is
//!    performed; a failure to persist stops the driver with an error. Then the actions in
//!    order: `Send` → the connection's writer task, `Close` → the writer closes the socket
//!    after the bytes queued before it, `Event` → stdout/stderr (buffered, flushed at the end
//!    of the drain). Nothing leaves and nothing is printed before the state it depends on is
//!    on disk; public messages are also appended to `DATA_DIR/messages.jsonl` after the commit
//!    (not with a store passphrase: it is plaintext).
//! 4. If nothing was due or waiting, it sleeps until the deadline or the next input.
//!
//! Delivery (issue 16 item 3): every received message printed on stdout (public, 1:1, group)
//! is also queued in the store's delivery log in its drain's commit; once the drain's output
//! is flushed the store is told ([`NodeStore::mark_shown`]) and the next commit moves the
//! durable cursor past it. At start, before anything else is printed after the enode line,
//! every message past the cursor is printed again (same line format; JSON lines carry
//! `message_id`). Guarantee: every message the store committed for delivery reaches stdout at
//! least once across any sequence of kills and restarts, in commit order; a message is printed
//! twice only if the process died after its line was flushed and before the next commit moved
//! the cursor (the next drain that commits anyway, or, on an idle node, a cursor-only commit
//! [`DELIVERY_CURSOR_IDLE_COMMIT_MS`] later, or the clean stop). Exactly once is impossible with a plain stdout
//! stream: the write to the pipe and the SQLite commit cannot be one atomic step, so a kill
//! between them either loses the line (cursor first) or repeats it (print first); we print
//! first, and a consumer that must see each message once dedupes by `message_id`.
//!
//! It never branches on protocol state.
//!
//! Back-pressure: stdin lines wait (the stdin forwarder stops reading, and the OS pipe fills)
//! while the writers hold [`STDIN_PAUSE_WRITE_QUEUE_BYTES`] or more, until they are below
//! [`STDIN_RESUME_WRITE_QUEUE_BYTES`]: a `/send` the node accepted must reach the wire well
//! within its Whisper TTL rather than wait behind a backlog (or in a pool) until it expires.
//! They wait too while the stack reports [`Stack::input_congested`] after a drain (the node's
//! public posts wait for room in its Whisper pool).
//! Each connection's reader has at most [`READ_CHUNKS_IN_FLIGHT`] chunks waiting for the loop,
//! so a node that cannot keep up makes TCP push back on its peers at once instead of queueing
//! seconds of envelopes in memory.
//!
//! Stopping: `/quit`, or a message on [`DriverConfig::stop_requests`] (SIGINT/SIGTERM in
//! `hush node`), makes the stack end every session ([`Stack::disconnect_all`]: Disconnect
//! `ClientQuitting`, 0x08), performs that drain, and waits at most
//! [`SHUTDOWN_FLUSH_TIMEOUT_MS`] for the writers to flush and close before returning.
//!
//! `now` is the wall clock read once at start plus a monotonic elapsed time ([`Clock`]), so it
//! never goes backwards even if the system clock is stepped.
//!
//! Tasks: one accept loop, one single-attempt dialer per `Action::Dial` (the node owns static
//! peers, redial and back-off; the driver reports a failed attempt with `handle_dial_failed`),
//! one stdin forwarder, and a reader and a writer per connection. They talk to the loop through
//! one bounded channel ([`INPUT_QUEUE_CAPACITY`]), so a slow node applies back-pressure to the
//! sockets instead of buffering without limit.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_io::Timer;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use hush_core::node::{
    Action, Command, ConnId, Direction, Event, Node, NodeError, NodePublicKey, Persist,
};
use hush_core::p2p::enode::Enode;
use hush_core::p2p::session::DisconnectReason;
use hush_core::Time;
use smol::channel::{Receiver, Sender};
use smol::net::{TcpListener, TcpStream};
use smol::Task;

use crate::archive::{ArchiveStore, ArchivedEnvelope, ARCHIVE_FILE};
use crate::commands::{
    cut_at_chars, echo_input, parse_line, parse_public_key, GroupChange, StdinCommand,
};
use crate::output::{
    kind_human_line, kind_json_line, persist_json_line, reply_json_line, status_line, wire_key_hex,
    MESSAGES_FILE,
};
use crate::sqlcipher::StorePassphrase;
use crate::store::{ChatChange, ChatKind, NodeStore, STORE_FILE};

/// Prefix of the stderr line printed for each chunk lost by injection.
pub const INJECTED_LOSS_PREFIX: &str = "hush: injected loss";

/// Characters of a command's error message printed at most: the node's errors may quote what
/// was typed (a 1 MB chat name), the parser's already cut it ([`crate::commands::echo_input`]).
pub const MAX_COMMAND_ERROR_CHARS: usize = 400;

/// Prefix of the stderr line printed when a group is created, learned or changed.
pub const GROUP_UPDATED_PREFIX: &str = "hush: group updated";

/// Prefix of the stderr line printed at start when messages past the delivery cursor are
/// printed again (see "Delivery" in the module doc).
pub const RESHOWN_PREFIX: &str = "hush: shown again";

/// An idle node commits a delivery cursor that lags behind the lines it printed after this
/// long (a transaction of its own, one WAL fsync); a busy node moves it in the next drain's
/// commit for free. Bounds what a kill re-prints to the lines of the last second or so, at
/// the cost of at most one extra commit per this interval, ms.
pub const DELIVERY_CURSOR_IDLE_COMMIT_MS: u64 = 1000;

/// Exit code of a crash injected by [`DriverConfig::crash_after_delivery_commits`].
pub const INJECTED_CRASH_EXIT_CODE: i32 = 137;

/// Bytes read from a socket per read call: 64 KiB, enough for a typical RLPx frame batch.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Inputs waiting for the node loop (chunks, lines, connection events of every task). When it
/// is full the tasks wait; a reader also waits for its own credit ([`READ_CHUNKS_IN_FLIGHT`]).
pub const INPUT_QUEUE_CAPACITY: usize = 256;

/// Chunks (≤ [`READ_BUFFER_BYTES`] each) one connection's reader may have read and not yet seen
/// handled by the loop. Beyond it the reader stops reading and TCP flow control pushes back on
/// the peer: 4 × 64 KiB is a few hundred envelopes, milliseconds of work, so an envelope does
/// not wait in our memory for seconds (of its 10 s TTL) behind a backlog.
pub const READ_CHUNKS_IN_FLIGHT: usize = 4;

/// Inputs handled at most before the stack's actions are drained (one group commit per drain).
/// Bounds what one drain holds back (every action of a drain waits for its commit) and the work
/// between two timer checks; 64 `/send`s take a few milliseconds.
pub const MAX_INPUTS_PER_DRAIN: usize = 64;

/// Bytes waiting in the connection writers (all connections together) at which the driver
/// stops taking stdin lines. 1 MiB is a few thousand envelopes, a fraction of a second of
/// writing on a healthy link, and far below [`MAX_WRITE_QUEUE_BYTES`] (where a peer is dropped).
pub const STDIN_PAUSE_WRITE_QUEUE_BYTES: usize = 1024 * 1024;

/// Once paused, stdin is read again when the writers hold less than this.
pub const STDIN_RESUME_WRITE_QUEUE_BYTES: usize = 256 * 1024;

/// Expired rows of the store's `own_envelopes` are deleted at most this often, in a commit made
/// anyway (never a transaction of its own on the send path), s.
pub const OWN_ENVELOPE_PRUNE_INTERVAL_SECS: u64 = 10;

/// On `/quit` or a signal: how long the writers get to send the Disconnect(ClientQuitting)
/// frames (and whatever was queued before them) and close, before the driver returns anyway, ms.
pub const SHUTDOWN_FLUSH_TIMEOUT_MS: u64 = 1000;

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
    /// Whether public chat `name` is joined (`/leave` of a chat not joined is refused, a
    /// `/send` that joins says so); `None`, the default, when the stack cannot tell.
    fn is_public_joined(&self, name: &str) -> Option<bool> {
        let _ = name;
        None
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
    /// True while the stack wants no more input (its queues are full: see
    /// `Node::input_congested`); the driver then stops reading stdin until a drain finds it
    /// false. The default never is.
    fn input_congested(&self) -> bool {
        false
    }
    /// A `shh_` JSON-RPC call (see `Node::handle_shh`); the default has no such API.
    fn handle_shh(
        &mut self,
        now: Time,
        request: hush_core::node::ShhRequest,
    ) -> Result<hush_core::node::ShhResponse, hush_core::node::ShhError> {
        let _ = (now, request);
        Err(hush_core::node::ShhError::Unavailable)
    }
    /// The application is stopping: end every session with Disconnect(ClientQuitting), then
    /// `Close` (see `Node::disconnect_all`). The default does nothing: the driver then closes
    /// the sockets when its flush time is up.
    fn disconnect_all(&mut self, now: Time) {
        let _ = now;
    }
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
    fn is_public_joined(&self, name: &str) -> Option<bool> {
        Some(Node::joined_chats(self).iter().any(|c| c == name))
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
    fn disconnect_all(&mut self, now: Time) {
        Node::disconnect_all(self, now, DisconnectReason::Quitting)
    }
    fn input_congested(&self) -> bool {
        Node::input_congested(self)
    }
    fn handle_shh(
        &mut self,
        now: Time,
        request: hush_core::node::ShhRequest,
    ) -> Result<hush_core::node::ShhResponse, hush_core::node::ShhError> {
        Node::handle_shh(self, now, request)
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

/// One stdin line as the reader hands it to [`run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StdinLine {
    /// A line of text (with or without its terminator: the parser ignores it).
    Text(String),
    /// A line that is not UTF-8: reported on stderr with its number, counted in `/stats`
    /// (`driver.stdin_lines_not_utf8`) and skipped; the lines after it are read as usual.
    NotUtf8 {
        /// 1-based line number on stdin.
        number: u64,
        /// Its length in bytes (without the terminator).
        bytes: usize,
    },
}

impl From<String> for StdinLine {
    fn from(line: String) -> StdinLine {
        StdinLine::Text(line)
    }
}

impl From<&str> for StdinLine {
    fn from(line: &str) -> StdinLine {
        StdinLine::Text(line.to_string())
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
    /// Each message (what asked, e.g. `SIGINT`) stops the node like `/quit`, with Disconnect
    /// ClientQuitting to every peer. `None`: only `/quit` does.
    pub stop_requests: Option<Receiver<String>>,
    /// Testing: exit (code [`INJECTED_CRASH_EXIT_CODE`], no flush, no cleanup) right after
    /// the Nth store commit that queued received messages, before printing them: a `kill -9`
    /// landing in the commit → print window (issue 16 item 3). `None` in production.
    pub crash_after_delivery_commits: Option<u64>,
    /// The passphrase `node.sqlite` and `archive.sqlite` are encrypted with
    /// (`crate::sqlcipher`); with one, no plaintext `messages.jsonl` is written. `None`:
    /// plaintext store.
    pub store_passphrase: Option<StorePassphrase>,
    /// The IP our enode URL names (`--nat extip:IP`); `None` = the listener's.
    pub advertised_ip: Option<IpAddr>,
    /// The JSON-RPC server's calls and counters (`--http`, `--ws`); `None`: no server.
    pub rpc: Option<crate::rpc::RpcInputs>,
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
    Line(StdinLine),
    StdinClosed,
    /// Stop like `/quit` (a signal; the text names it).
    Stop(String),
    /// A JSON-RPC call ([`crate::rpc`]), answered on its reply channel.
    Rpc(crate::rpc::RpcCall),
}

enum WriteCmd {
    Bytes(Vec<u8>),
    Close,
}

struct Conn {
    writer: Sender<WriteCmd>,
    queued_bytes: Arc<AtomicUsize>,
    /// Gives the reader back one chunk of credit ([`READ_CHUNKS_IN_FLIGHT`]).
    read_credit: Sender<()>,
    closing: bool,
    _reader: Task<()>,
    _writer: Task<()>,
}

/// Bytes queued in all connection writers, shared by the loop (adds), the writers (subtract)
/// and the stdin forwarder (waits while it is high). See [`STDIN_PAUSE_WRITE_QUEUE_BYTES`].
struct WriteBacklog {
    queued_bytes: AtomicUsize,
    /// The forwarder is waiting for a wake-up.
    stdin_paused: AtomicBool,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// Times stdin was paused (for `/stats`).
    pauses: AtomicU64,
    /// The stack asked for no more input ([`Stack::input_congested`]), as of the last drain.
    stack_congested: AtomicBool,
}

impl WriteBacklog {
    fn new() -> WriteBacklog {
        let (wake_tx, wake_rx) = smol::channel::bounded(1);
        WriteBacklog {
            queued_bytes: AtomicUsize::new(0),
            stdin_paused: AtomicBool::new(false),
            wake_tx,
            wake_rx,
            pauses: AtomicU64::new(0),
            stack_congested: AtomicBool::new(false),
        }
    }

    fn room(&self, mark: usize) -> bool {
        self.queued() < mark && !self.stack_congested.load(Ordering::SeqCst)
    }

    /// Records the stack's congestion after a drain; wakes a paused forwarder when it ends.
    fn set_stack_congested(&self, congested: bool) {
        let was = self.stack_congested.swap(congested, Ordering::SeqCst);
        if was
            && !congested
            && self.queued() < STDIN_RESUME_WRITE_QUEUE_BYTES
            && self.stdin_paused.swap(false, Ordering::SeqCst)
        {
            let _ = self.wake_tx.try_send(());
        }
    }

    fn queued(&self) -> usize {
        self.queued_bytes.load(Ordering::SeqCst)
    }

    fn add(&self, n: usize) {
        self.queued_bytes.fetch_add(n, Ordering::SeqCst);
    }

    /// `n` bytes left the writers (written or discarded); wakes a paused forwarder once the
    /// backlog is below the resume mark.
    fn sub(&self, n: usize) {
        let left = self.queued_bytes.fetch_sub(n, Ordering::SeqCst) - n;
        if left < STDIN_RESUME_WRITE_QUEUE_BYTES
            && !self.stack_congested.load(Ordering::SeqCst)
            && self.stdin_paused.swap(false, Ordering::SeqCst)
        {
            let _ = self.wake_tx.try_send(());
        }
    }

    /// Returns at once below the pause mark; otherwise waits until the backlog is below the
    /// resume mark. (The flag is set before the re-check, and the writer clears it before
    /// waking, so no wake-up is lost; a stale one only costs one more check.)
    async fn wait_for_room(&self) {
        if self.room(STDIN_PAUSE_WRITE_QUEUE_BYTES) {
            return;
        }
        self.pauses.fetch_add(1, Ordering::SeqCst);
        loop {
            self.stdin_paused.store(true, Ordering::SeqCst);
            if self.room(STDIN_RESUME_WRITE_QUEUE_BYTES) {
                self.stdin_paused.store(false, Ordering::SeqCst);
                return;
            }
            if self.wake_rx.recv().await.is_err() {
                return;
            }
        }
    }
}

/// Runs the node until `/quit` (a [`StdinCommand::Quit`] line), a stop request
/// ([`DriverConfig::stop_requests`]) or a fatal error; on a stop it says Disconnect
/// ClientQuitting to every peer first (see the module contract).
///
/// Prints the enode (`stack.public_key()` at `listener`'s port and address, or at
/// [`DriverConfig::advertised_ip`]) as the first `out` line.
/// `lines` delivers stdin lines; its closing (EOF) does not stop the node.
pub async fn run<S: Stack>(
    stack: S,
    listener: TcpListener,
    clock: Clock,
    config: DriverConfig,
    lines: Receiver<StdinLine>,
    io: Outputs,
) -> anyhow::Result<()> {
    // Buffered: a drain's lines go out in one write at its end (after its commit).
    let mut io = Outputs {
        out: Box::new(BufWriter::new(io.out)),
        err: Box::new(BufWriter::new(io.err)),
    };
    let local = listener.local_addr().context("listener address")?;
    let advertised = SocketAddr::new(config.advertised_ip.unwrap_or(local.ip()), local.port());
    let enode = Enode::new(stack.public_key(), advertised);
    writeln!(io.out, "{enode}").context("stdout")?;
    io.out.flush().context("stdout")?;
    tracing::info!(%local, "listening");

    let (tx, rx) = smol::channel::bounded::<Input>(INPUT_QUEUE_CAPACITY);
    let backlog = Arc::new(WriteBacklog::new());
    let mut tasks: Vec<Task<()>> = vec![
        smol::spawn(accept_loop(listener, tx.clone())),
        smol::spawn(forward_lines(lines, tx.clone(), backlog.clone())),
    ];
    if let Some(stop) = config.stop_requests.clone() {
        tasks.push(smol::spawn(forward_stop_requests(stop, tx.clone())));
    }
    if let Some(rpc) = &config.rpc {
        tasks.push(smol::spawn(forward_rpc_calls(
            rpc.calls.clone(),
            tx.clone(),
        )));
    }

    let store = NodeStore::open_keyed(
        &config
            .store_path
            .clone()
            .unwrap_or_else(|| config.data_dir.join(STORE_FILE)),
        config.store_passphrase.as_ref(),
    )?;
    let joined_public = store
        .chats()?
        .into_iter()
        .filter(|c| c.kind == ChatKind::Public)
        .map(|c| c.id)
        .collect();
    let mut driver = Driver {
        stack,
        clock,
        conns: BTreeMap::new(),
        next_conn: 1,
        tx,
        io,
        persist_path: config
            .store_passphrase
            .is_none()
            .then(|| config.data_dir.join(MESSAGES_FILE)),
        store_passphrase: config.store_passphrase.clone(),
        persist_file: None,
        archive_path: config
            .archive_path
            .clone()
            .unwrap_or_else(|| config.data_dir.join(ARCHIVE_FILE)),
        archive: None,
        store,
        joined_public,
        chat_changes: Vec::new(),
        next_prune_secs: 0,
        actions: Vec::new(),
        backlog,
        enode,
        installation_id: config.installation_id.clone(),
        loss: config.loss.map(|l| LossState {
            config: l,
            rng: hush_core::rng::rng_from_seed(hush_core::rng::seed_from_u64(l.seed)),
            outage_until: None,
            dropped_chunks: 0,
        }),
        json: config.json,
        reshown_at_start: 0,
        crash_after_delivery_commits: config.crash_after_delivery_commits,
        cursor_lag_since: None,
        quit: false,
        stdin_lines_not_utf8: 0,
        shutting_down: false,
        drain_at_ms: 0,
        rpc: crate::rpc::link::RpcRouter::new(config.rpc.as_ref().map(|r| r.counters.clone())),
    };
    // Messages committed for delivery before a kill and maybe never shown: shown now.
    driver.show_undelivered()?;
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

    // Inputs handled since the last drain.
    let mut handled = 0usize;
    while !driver.quit {
        // Timers first: a due deadline runs before any more input is taken.
        let now = driver.clock.now();
        let due = driver.stack.poll_timeout().is_some_and(|t| t <= now);
        if due {
            driver.stack.handle_timeout(now);
        }
        // Then whatever input is already waiting, up to a batch.
        while handled < MAX_INPUTS_PER_DRAIN && !driver.quit {
            let Ok(input) = rx.try_recv() else {
                break;
            };
            driver.handle_input(input)?;
            handled += 1;
        }
        if due || handled > 0 {
            driver.drain()?;
            handled = 0;
            continue;
        }
        // Nothing due, nothing waiting: an idle node moves a lagging delivery cursor (see
        // "Delivery"); then sleep until the deadline or the next input.
        let cursor_due = driver.commit_lagging_cursor()?;
        let deadline = driver
            .stack
            .poll_timeout()
            .map(|t| driver.clock.instant_at(t));
        let wake = match (deadline, cursor_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timer = async {
            match wake {
                Some(t) => {
                    Timer::at(t).await;
                }
                None => std::future::pending::<()>().await,
            }
            None
        };
        match async { Some(rx.recv().await) }.or(timer).await {
            Some(Ok(input)) => {
                driver.handle_input(input)?;
                handled = 1;
            }
            // We hold a sender, so the channel never closes.
            Some(Err(_)) => break,
            None => {}
        }
    }
    if handled > 0 {
        driver.drain()?;
    }
    driver.shutdown(&rx).await?;
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
    /// `messages.jsonl`; `None` with a store passphrase (it would leak the history).
    persist_path: Option<PathBuf>,
    persist_file: Option<File>,
    store_passphrase: Option<StorePassphrase>,
    archive_path: PathBuf,
    archive: Option<ArchiveStore>,
    store: NodeStore,
    /// Public chats recorded as joined in the store: a `/send` to one of them writes nothing.
    joined_public: BTreeSet<String>,
    /// Chat-index changes of this turn, committed with the drain's records.
    chat_changes: Vec<ChatChange>,
    /// Unix seconds from which the next commit also deletes expired own envelopes.
    next_prune_secs: u64,
    /// A drain's actions (kept to reuse the allocation).
    actions: Vec<Action>,
    backlog: Arc<WriteBacklog>,
    enode: Enode,
    installation_id: String,
    loss: Option<LossState>,
    json: bool,
    /// Messages printed again at start because the delivery cursor was behind them.
    reshown_at_start: u64,
    /// Testing: see [`DriverConfig::crash_after_delivery_commits`] (counts down).
    crash_after_delivery_commits: Option<u64>,
    /// When the loop first went idle with the delivery cursor behind the printed lines.
    cursor_lag_since: Option<Instant>,
    quit: bool,
    /// Stdin lines skipped because they are not UTF-8 (`/stats`).
    stdin_lines_not_utf8: u64,
    /// Stopping: no more dials, connections or commands.
    shutting_down: bool,
    /// When the current drain began, ms since the Unix epoch (our clock; under Shadow the
    /// simulated one): the `received_at` of the messages it delivers, which the stack
    /// handled in this turn.
    drain_at_ms: u64,
    /// JSON-RPC subscriptions and counters.
    rpc: crate::rpc::link::RpcRouter,
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
    /// A stderr line (buffered until the end of the drain).
    fn err_line(&mut self, line: &str) {
        // Best effort: a closed stderr must not stop the node.
        let _ = writeln!(self.io.err, "{line}");
    }

    /// A stdout line (buffered until the end of the drain).
    fn out_line(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.io.out, "{line}").context("stdout")
    }

    fn flush_outputs(&mut self) -> anyhow::Result<()> {
        let _ = self.io.err.flush();
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
        let (credit_tx, credit_rx) = smol::channel::bounded(READ_CHUNKS_IN_FLIGHT);
        for _ in 0..READ_CHUNKS_IN_FLIGHT {
            let _ = credit_tx.try_send(());
        }
        let reader = smol::spawn(read_loop(conn, stream.clone(), self.tx.clone(), credit_rx));
        let writer = smol::spawn(write_loop(
            conn,
            stream,
            wrx,
            queued_bytes.clone(),
            self.backlog.clone(),
            self.tx.clone(),
        ));
        self.conns.insert(
            conn,
            Conn {
                writer: wtx,
                queued_bytes,
                read_credit: credit_tx,
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
            Input::Accepted { stream, .. } if self.shutting_down => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
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
            Input::CoreDialed { stream, .. } if self.shutting_down => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
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
                if let Some(c) = self.conns.get(&conn) {
                    // The chunk is handled now: the reader may read another.
                    let _ = c.read_credit.try_send(());
                    if !self.shutting_down {
                        self.stack.handle_bytes(now, conn, &bytes);
                    }
                }
            }
            Input::Closed { conn } => {
                // The reader and the writer may both report; the first one counts.
                if self.conns.remove(&conn).is_some() {
                    self.stack.handle_connection_closed(now, conn);
                }
            }
            Input::Line(StdinLine::NotUtf8 { number, bytes }) => {
                self.stdin_lines_not_utf8 += 1;
                self.err_line(&format!(
                    "hush: error: stdin line {number} is not UTF-8 ({bytes} bytes); skipped"
                ));
            }
            Input::Line(StdinLine::Text(line)) => match parse_line(&line) {
                Ok(None) => {}
                Ok(Some(cmd)) => {
                    if let Err(e) = self.stdin_command(now, cmd) {
                        // The node's errors may quote what was typed (a chat name): bounded.
                        let e = format!("{e:#}");
                        self.err_line(&format!(
                            "hush: error: {}",
                            cut_at_chars(&e, MAX_COMMAND_ERROR_CHARS)
                        ));
                    }
                }
                Err(e) => self.err_line(&format!("hush: error: {e}")),
            },
            Input::StdinClosed => {
                tracing::debug!("stdin closed; still running until /quit or a signal")
            }
            Input::Stop(what) => {
                self.err_line(&format!("hush: {what}: stopping"));
                self.quit = true;
            }
            Input::Rpc(call) => self.rpc.handle_call(&mut self.stack, now, call),
        }
        Ok(())
    }

    /// Performs one stdin command. Errors are the user's (bad group name, node refusal) and are
    /// reported on stderr; a store failure in a command that only reads is reported too.
    fn stdin_command(&mut self, now: Time, cmd: StdinCommand) -> anyhow::Result<()> {
        if self.quit {
            // Lines after /quit in the same batch are not run.
            return Ok(());
        }
        if !matches!(cmd, StdinCommand::Node(_) | StdinCommand::Quit) {
            // These read the store or the printed state (group names, history, chats): what
            // the inputs before them in this batch did is committed and performed first.
            self.drain()?;
        }
        match cmd {
            StdinCommand::Quit => self.quit = true,
            StdinCommand::RequestHistory { chat, since_secs } => {
                self.stack.request_history(now, &chat, since_secs)?
            }
            StdinCommand::Node(cmd) => {
                let mut joins_to_send = None;
                match &cmd {
                    Command::LeavePublicChat { name }
                        if self.stack.is_public_joined(name) == Some(false) =>
                    {
                        anyhow::bail!(
                            "/leave: not in public chat {} (see /chats)",
                            echo_input(name)
                        )
                    }
                    // Kept from the first version: a /send joins its chat, and now says so.
                    Command::SendPublicMessage { chat, .. }
                        if self.stack.is_public_joined(chat) == Some(false) =>
                    {
                        joins_to_send = Some(chat.clone());
                    }
                    _ => {}
                }
                // The application's own record of what it joined (rejoined at start).
                let joined = match &cmd {
                    Command::JoinPublicChat { name } => Some((name.clone(), true)),
                    Command::SendPublicMessage { chat, .. } => Some((chat.clone(), true)),
                    Command::LeavePublicChat { name } => Some((name.clone(), false)),
                    _ => None,
                };
                self.stack.handle_command(now, cmd)?;
                if let Some(chat) = joins_to_send {
                    self.err_line(&format!(
                        "hush: joined public chat {chat} to send to it (/leave {chat} to stop receiving it)"
                    ));
                }
                // Written with the drain's commit, and only when it changes something: a
                // `/send` to a chat already recorded writes nothing.
                match joined {
                    Some((name, true)) if !self.joined_public.contains(&name) => {
                        self.joined_public.insert(name.clone());
                        self.chat_changes.push(ChatChange::Upsert {
                            id: name.clone(),
                            kind: ChatKind::Public,
                            name,
                        });
                    }
                    Some((_, true)) => {}
                    Some((name, false)) => {
                        self.joined_public.remove(&name);
                        self.chat_changes.push(ChatChange::Leave { id: name });
                    }
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
                    GroupChange::Join => Command::JoinGroup { group },
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
                if rows.is_empty() {
                    let known = self.store.chat(&id)?.is_some()
                        || self.stack.is_public_joined(&id) == Some(true);
                    if !known {
                        anyhow::bail!("/history: no chat {} (see /chats)", echo_input(&chat));
                    }
                    self.err_line(&format!("hush: /history {chat}: no messages stored"));
                }
                for row in rows {
                    let name = self.group_name(row.kind, &row.message.chat);
                    let line = if self.json {
                        kind_json_line(
                            &row.message,
                            row.kind.as_str(),
                            name.as_deref(),
                            Some("history"),
                            row.received_at_ms,
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
                // The driver's own: store transactions (one WAL fsync each), stdin pauses.
                stats.push(("driver.store_commits".into(), self.store.commits()));
                stats.push(("driver.reshown_at_start".into(), self.reshown_at_start));
                stats.push(("driver.store_compactions".into(), self.store.compactions()));
                stats.push((
                    "driver.stdin_pauses".into(),
                    self.backlog.pauses.load(Ordering::SeqCst),
                ));
                stats.push((
                    "driver.stdin_lines_not_utf8".into(),
                    self.stdin_lines_not_utf8,
                ));
                stats.extend(self.rpc.stats());
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

    /// A received message's stdout line; `received_at` (ms) is `None` when not known (a
    /// message stored before hush kept receive times, shown again at start).
    fn message_line(
        &self,
        kind: ChatKind,
        m: &hush_core::node::ChatMessage,
        received_at: Option<u64>,
    ) -> String {
        if self.json {
            let name = self.group_name(kind, &m.chat);
            kind_json_line(m, kind.as_str(), name.as_deref(), None, received_at)
        } else {
            self.human_line(kind, m)
        }
    }

    /// Drains the stack: collects every pending action, group-commits what they need on disk
    /// ([`Driver::commit_drain`]), then performs them in order and flushes stdout/stderr.
    fn drain(&mut self) -> anyhow::Result<()> {
        self.drain_at_ms = self.clock.now().as_millis();
        let mut actions = std::mem::take(&mut self.actions);
        while let Some(action) = self.stack.poll_action() {
            actions.push(action);
        }
        let result = self.commit_drain(&actions).and_then(|()| {
            for action in actions.drain(..) {
                self.perform(action)?;
            }
            Ok(())
        });
        actions.clear();
        self.actions = actions;
        result?;
        self.backlog
            .set_stack_congested(self.stack.input_congested());
        self.flush_outputs()?;
        // The drain's lines are out: the next commit may move the delivery cursor past them.
        self.store.mark_shown();
        Ok(())
    }

    /// If the delivery cursor has lagged behind the printed lines for
    /// [`DELIVERY_CURSOR_IDLE_COMMIT_MS`], commits it on its own. Returns when to call again
    /// (the cursor still lags), or `None`.
    fn commit_lagging_cursor(&mut self) -> anyhow::Result<Option<Instant>> {
        if !self.store.cursor_lags() {
            self.cursor_lag_since = None;
            return Ok(None);
        }
        let since = *self.cursor_lag_since.get_or_insert_with(Instant::now);
        let due = since + std::time::Duration::from_millis(DELIVERY_CURSOR_IDLE_COMMIT_MS);
        if Instant::now() < due {
            return Ok(Some(due));
        }
        self.store.commit_delivery_cursor()?;
        self.cursor_lag_since = None;
        Ok(None)
    }

    /// Testing: ends the process, unflushed, on the commit [`DriverConfig::
    /// crash_after_delivery_commits`] names.
    fn maybe_inject_crash(&mut self) {
        if let Some(left) = self.crash_after_delivery_commits.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                // Straight to stderr: the buffered outputs die with the process, as on a kill.
                eprintln!("hush: injected crash after a delivery commit");
                std::process::exit(INJECTED_CRASH_EXIT_CODE);
            }
        }
    }

    /// Prints every message the store committed for delivery past its cursor (see "Delivery"
    /// in the module doc), then lets the next commit move the cursor past them.
    fn show_undelivered(&mut self) -> anyhow::Result<()> {
        let pending = self.store.undelivered()?;
        for u in &pending {
            let line = self.message_line(u.row.kind, &u.row.message, u.row.received_at_ms);
            self.out_line(&line)?;
        }
        if !pending.is_empty() {
            self.reshown_at_start = pending.len() as u64;
            self.err_line(&format!(
                "{RESHOWN_PREFIX} {} message(s) committed before the last stop",
                pending.len()
            ));
        }
        self.flush_outputs()?;
        self.store.mark_shown();
        // Out: a quick second kill must not show them yet again.
        self.store.commit_delivery_cursor()
    }

    /// Group commit of one drain: its `Persist` records in emission order, with this turn's
    /// chat-index changes (and, at most every [`OWN_ENVELOPE_PRUNE_INTERVAL_SECS`], the pruning
    /// of expired own envelopes) in one store transaction; its `Persist::Envelope`s in one
    /// archive transaction; then the `messages.jsonl` lines in one write.
    fn commit_drain(&mut self, actions: &[Action]) -> anyhow::Result<()> {
        let mut records: Vec<&Persist> = Vec::new();
        // Received messages this drain prints: queued for delivery in the same commit.
        let mut deliveries: Vec<[u8; 32]> = Vec::new();
        let mut envelopes: Vec<ArchivedEnvelope<'_>> = Vec::new();
        let mut jsonl = String::new();
        let mut me: Option<String> = None;
        for action in actions {
            match action {
                Action::Persist(Persist::Envelope {
                    hash,
                    sent_secs,
                    topic,
                    raw,
                }) => envelopes.push((hash, *sent_secs, topic, raw)),
                Action::Persist(p) => {
                    match p {
                        Persist::ChatMessage(m) => {
                            jsonl.push_str(&persist_json_line(m, self.drain_at_ms));
                            jsonl.push('\n');
                        }
                        // Conversation records carry secrets (ratchet keys): stored, never
                        // logged.
                        Persist::Conversation(_) | Persist::OwnEnvelope { .. } => {}
                        _ => {
                            anyhow::bail!("a persist record this driver does not know how to store")
                        }
                    }
                    records.push(p);
                }
                Action::Event(Event::MessageReceived(m) | Event::Direct(m)) => {
                    deliveries.push(m.message_id)
                }
                Action::Event(Event::Group { message, .. }) => deliveries.push(message.message_id),
                Action::Event(Event::GroupUpdated {
                    group_id,
                    members,
                    name,
                    ..
                }) => {
                    // The group's id and name for /group and /chats: the application's index,
                    // committed with the drain.
                    self.chat_changes.push(ChatChange::Upsert {
                        id: group_id.clone(),
                        kind: ChatKind::Group,
                        name: name.clone(),
                    });
                    let me = me.get_or_insert_with(|| wire_key_hex(&self.stack.chat_public_key()));
                    if !members.contains(me) {
                        // Left or removed: no longer listed (its history stays).
                        self.chat_changes.push(ChatChange::Leave {
                            id: group_id.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        if !envelopes.is_empty() {
            if self.archive.is_none() {
                self.archive = Some(ArchiveStore::open_keyed(
                    &self.archive_path,
                    self.store_passphrase.as_ref(),
                )?);
            }
            if let Some(a) = self.archive.as_mut() {
                a.insert_batch(&envelopes)?;
            }
        }
        if !records.is_empty() || !self.chat_changes.is_empty() || !deliveries.is_empty() {
            let now_secs = self.clock.now().as_millis() / 1000;
            // Keep `own_envelopes` to the envelopes still alive, not every post ever made.
            let prune = (now_secs >= self.next_prune_secs).then(|| {
                self.next_prune_secs = now_secs + OWN_ENVELOPE_PRUNE_INTERVAL_SECS;
                now_secs
            });
            self.store.commit_batch_at(
                Some(self.drain_at_ms),
                &records,
                &self.chat_changes,
                prune,
                &deliveries,
            )?;
            self.chat_changes.clear();
            if !deliveries.is_empty() {
                self.maybe_inject_crash();
            }
            // The record log's tail is folded into its snapshot now and then (its own
            // transaction, after this drain's: crash-safe, see `crate::store`).
            if let Some(c) = self.store.compact_if_due()? {
                tracing::info!(
                    records_in = c.records_in,
                    records_out = c.records_out,
                    snapshot_bytes = c.snapshot_bytes,
                    "record log compacted"
                );
            }
        }
        if !jsonl.is_empty() {
            self.append_jsonl(&jsonl)?;
        }
        Ok(())
    }

    /// Performs one action of a committed drain.
    fn perform(&mut self, action: Action) -> anyhow::Result<()> {
        match action {
            Action::Send { conn, bytes } => self.send(conn, bytes),
            // One attempt; the node owns redial and backoff (core::p2p::peers).
            Action::Dial { .. } if self.shutting_down => {}
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
            // Committed by `commit_drain`.
            Action::Persist(_) => {}
            Action::Event(Event::ShhMessage(pushed)) => self.rpc.route(*pushed),
            Action::Event(Event::MessageReceived(m)) => {
                let line = self.message_line(ChatKind::Public, &m, Some(self.drain_at_ms));
                self.out_line(&line)?;
            }
            Action::Event(Event::Direct(m)) => {
                let line = self.message_line(ChatKind::Dm, &m, Some(self.drain_at_ms));
                self.out_line(&line)?;
            }
            Action::Event(Event::Group { message, .. }) => {
                let line = self.message_line(ChatKind::Group, &message, Some(self.drain_at_ms));
                self.out_line(&line)?;
            }
            Action::Event(Event::GroupUpdated {
                group_id,
                members,
                admins,
                name,
            }) => {
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
        let queued = c.queued_bytes.load(Ordering::SeqCst) + len;
        if queued > MAX_WRITE_QUEUE_BYTES {
            c.closing = true;
            let _ = c.writer.try_send(WriteCmd::Close);
            self.err_line(&format!(
                "hush: conn {conn}: peer is not reading ({queued} bytes queued, max {MAX_WRITE_QUEUE_BYTES}); closing"
            ));
            return;
        }
        c.queued_bytes.fetch_add(len, Ordering::SeqCst);
        self.backlog.add(len);
        if c.writer.try_send(WriteCmd::Bytes(bytes)).is_err() {
            // The writer has ended (its socket failed): the bytes never count as queued.
            c.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            self.backlog.sub(len);
        }
    }

    /// After the loop: ends every session (Disconnect ClientQuitting), performs that drain, and
    /// waits up to [`SHUTDOWN_FLUSH_TIMEOUT_MS`] for every connection to be flushed and closed.
    async fn shutdown(&mut self, rx: &Receiver<Input>) -> anyhow::Result<()> {
        self.shutting_down = true;
        let now = self.clock.now();
        self.stack.disconnect_all(now);
        self.drain()?;
        let deadline = Instant::now() + std::time::Duration::from_millis(SHUTDOWN_FLUSH_TIMEOUT_MS);
        // The deadline is checked every turn: a peer that keeps sending cannot hold us here.
        while !self.conns.is_empty() && Instant::now() < deadline {
            let timeout = async {
                Timer::at(deadline).await;
                None
            };
            match async { Some(rx.recv().await) }.or(timeout).await {
                // Our writer has flushed and closed, or the peer closed after reading our
                // Disconnect: either way nothing is left to send.
                Some(Ok(Input::Closed { conn })) => {
                    self.conns.remove(&conn);
                }
                Some(Ok(input)) => self.handle_input(input)?,
                Some(Err(_)) | None => break,
            }
        }
        if !self.conns.is_empty() {
            let left = self.conns.len();
            self.err_line(&format!(
                "hush: {left} connection(s) not closed within {SHUTDOWN_FLUSH_TIMEOUT_MS} ms of quitting; dropping them"
            ));
        }
        self.flush_outputs()?;
        // Everything printed is out: a clean restart shows nothing again.
        self.store.commit_delivery_cursor()
    }

    /// Appends whole lines to `messages.jsonl` (a plain-text export of public messages); not
    /// written with a store passphrase.
    fn append_jsonl(&mut self, lines: &str) -> anyhow::Result<()> {
        let Some(path) = &self.persist_path else {
            return Ok(());
        };
        if self.persist_file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            self.persist_file = Some(f);
        }
        if let Some(f) = self.persist_file.as_mut() {
            // One write call per drain so concurrent readers see whole lines.
            f.write_all(lines.as_bytes())
                .with_context(|| format!("appending to {}", path.display()))?;
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

/// Stdin lines to the loop, one at a time, each waiting while the writers' backlog is high
/// ([`STDIN_PAUSE_WRITE_QUEUE_BYTES`]): then stdin is not read and the pipe pushes back.
async fn forward_lines(lines: Receiver<StdinLine>, tx: Sender<Input>, backlog: Arc<WriteBacklog>) {
    while let Ok(line) = lines.recv().await {
        backlog.wait_for_room().await;
        if tx.send(Input::Line(line)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Input::StdinClosed).await;
}

async fn forward_rpc_calls(calls: Receiver<crate::rpc::RpcCall>, tx: Sender<Input>) {
    while let Ok(call) = calls.recv().await {
        if tx.send(Input::Rpc(call)).await.is_err() {
            return;
        }
    }
}

async fn forward_stop_requests(stop: Receiver<String>, tx: Sender<Input>) {
    while let Ok(what) = stop.recv().await {
        if tx.send(Input::Stop(what)).await.is_err() {
            return;
        }
    }
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

async fn read_loop(conn: ConnId, mut stream: TcpStream, tx: Sender<Input>, credit: Receiver<()>) {
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    loop {
        // One credit per chunk; the loop gives it back when it has handled the chunk.
        if credit.recv().await.is_err() {
            return;
        }
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
    backlog: Arc<WriteBacklog>,
    tx: Sender<Input>,
) {
    while let Ok(cmd) = cmds.recv().await {
        match cmd {
            WriteCmd::Bytes(bytes) => {
                let result = stream.write_all(&bytes).await;
                queued_bytes.fetch_sub(bytes.len(), Ordering::SeqCst);
                backlog.sub(bytes.len());
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
    // Whatever is still queued will never be written: it leaves the backlog.
    cmds.close();
    while let Ok(cmd) = cmds.try_recv() {
        if let WriteCmd::Bytes(bytes) = cmd {
            queued_bytes.fetch_sub(bytes.len(), Ordering::SeqCst);
            backlog.sub(bytes.len());
        }
    }
    // Shutting down both directions also ends the reader's pending read.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = tx.send(Input::Closed { conn }).await;
}

#[cfg(test)]
mod tests;
