//! The driver loop over real loopback TCP with a fake stack that speaks a toy line protocol:
//! `hi <hex key>` on connect, `msg <chat> <text>` per message. This checks the driver's
//! mechanics (accept, dial, bytes both ways, close, timer, persist, stdout/stderr, stdin) without
//! the real node.

use super::*;
use crate::output::PEER_CONNECTED_PREFIX;
use crate::test_util::temp_dir;
use hush_core::node::ChatMessage;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// Bound on every wait in these tests; generous because the machine is shared.
const WAIT_MS: u64 = 30_000;
/// Fake stack timer period.
const TICK_MS: u64 = 20;

struct Fake {
    key: NodePublicKey,
    actions: VecDeque<Action>,
    bufs: BTreeMap<ConnId, Vec<u8>>,
    remotes: BTreeMap<ConnId, NodePublicKey>,
    joined: BTreeSet<String>,
    clock: u64,
    next_tick: Option<Time>,
    ticks: Arc<AtomicU64>,
    /// Static peers by the dial conn id last used for them, and attempts made.
    dials: BTreeMap<ConnId, (Enode, u32)>,
    next_dial: ConnId,
    /// Starvation probe: the deadline is always due (`poll_timeout` = the epoch).
    always_due: bool,
    /// Commands handled since the last `handle_timeout`, and the most ever seen.
    commands_since_timeout: u64,
    most_commands_between_timeouts: Arc<AtomicU64>,
    sent: u64,
}

/// Attempts the fake makes per static peer (the real node redials with back-off forever).
const FAKE_DIAL_ATTEMPTS: u32 = 3;

impl Fake {
    fn new(key_byte: u8, ticks: Arc<AtomicU64>) -> Fake {
        Fake {
            key: [key_byte; 64],
            actions: VecDeque::new(),
            bufs: BTreeMap::new(),
            remotes: BTreeMap::new(),
            joined: BTreeSet::new(),
            clock: 0,
            next_tick: None,
            ticks,
            dials: BTreeMap::new(),
            next_dial: hush_core::p2p::peers::DIAL_CONN_ID_BASE,
            always_due: false,
            commands_since_timeout: 0,
            most_commands_between_timeouts: Arc::new(AtomicU64::new(0)),
            sent: 0,
        }
    }

    fn dial(&mut self, enode: Enode, attempt: u32) {
        let conn = self.next_dial;
        self.next_dial += 1;
        self.dials.insert(conn, (enode, attempt));
        self.actions.push_back(Action::Dial { conn, enode });
    }

    fn line(&mut self, now: Time, conn: ConnId, line: &str) {
        if let Some(hex_key) = line.strip_prefix("hi ") {
            let mut remote = [0u8; 64];
            hex::decode_to_slice(hex_key, &mut remote).unwrap();
            self.remotes.insert(conn, remote);
            self.actions.push_back(Action::Event(Event::PeerConnected {
                conn,
                remote,
                client_id: "fake".into(),
            }));
        } else if let Some(reason) = line.strip_prefix("bye ") {
            self.actions
                .push_back(Action::Event(Event::PeerDisconnected {
                    conn,
                    reason: format!("{reason} (by peer)"),
                }));
        } else if let Some(rest) = line.strip_prefix("msg ") {
            let (chat, text) = rest.split_once(' ').unwrap();
            let remote = self.remotes[&conn];
            if self.joined.contains(chat) {
                self.clock += 1;
                let mut from = [4u8; 65];
                from[1..].copy_from_slice(&remote);
                let m = ChatMessage {
                    chat: chat.into(),
                    from,
                    text: text.into(),
                    clock: self.clock,
                    timestamp_ms: now.as_millis(),
                    message_id: [1; 32],
                };
                self.actions
                    .push_back(Action::Persist(Persist::ChatMessage(m.clone())));
                self.actions
                    .push_back(Action::Event(Event::MessageReceived(m)));
            }
        }
    }
}

impl Stack for Fake {
    fn public_key(&self) -> NodePublicKey {
        self.key
    }
    fn handle_dial_failed(&mut self, _now: Time, conn: ConnId) {
        if let Some((enode, attempt)) = self.dials.remove(&conn) {
            if attempt < FAKE_DIAL_ATTEMPTS {
                self.dial(enode, attempt + 1);
            }
        }
    }
    fn handle_connection(
        &mut self,
        _now: Time,
        conn: ConnId,
        _d: Direction,
    ) -> Result<(), NodeError> {
        self.bufs.insert(conn, Vec::new());
        self.actions.push_back(Action::Send {
            conn,
            bytes: format!("hi {}\n", hex::encode(self.key)).into_bytes(),
        });
        Ok(())
    }
    fn handle_bytes(&mut self, now: Time, conn: ConnId, bytes: &[u8]) {
        let buf = self.bufs.get_mut(&conn).unwrap();
        buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            lines.push(String::from_utf8(line).unwrap().trim_end().to_string());
        }
        for line in lines {
            self.line(now, conn, &line);
        }
    }
    fn handle_connection_closed(&mut self, _now: Time, conn: ConnId) {
        self.bufs.remove(&conn);
        self.remotes.remove(&conn);
        self.actions
            .push_back(Action::Event(Event::PeerDisconnected {
                conn,
                reason: "closed".into(),
            }));
    }
    fn handle_command(&mut self, now: Time, command: Command) -> Result<(), NodeError> {
        self.commands_since_timeout += 1;
        self.most_commands_between_timeouts
            .fetch_max(self.commands_since_timeout, Ordering::SeqCst);
        match command {
            Command::JoinPublicChat { name } => {
                self.joined.insert(name);
            }
            // "Leaving" chat `drop` closes every connection, to exercise Action::Close.
            Command::LeavePublicChat { name } if name == "drop" => {
                for &conn in self.remotes.keys() {
                    self.actions.push_back(Action::Close { conn });
                }
            }
            Command::LeavePublicChat { name } => {
                self.joined.remove(&name);
            }
            Command::AddStaticPeer(enode) => self.dial(enode, 1),
            Command::RemoveStaticPeer(_) | Command::SendCapabilityMessage { .. } => {}
            // 1:1 and groups are not modelled by this fake.
            Command::SendDirect { .. }
            | Command::CreateGroup { .. }
            | Command::AddGroupMember { .. }
            | Command::RenameGroup { .. }
            | Command::RemoveGroupMember { .. }
            | Command::AddGroupAdmins { .. }
            | Command::JoinGroup { .. }
            | Command::LeaveGroup { .. }
            | Command::PairDevice { .. }
            | Command::SendGroup { .. }
            | Command::SetChatFormat { .. } => {}
            Command::SendPublicMessage { chat, text } => {
                for &conn in self.remotes.keys() {
                    self.actions.push_back(Action::Send {
                        conn,
                        bytes: format!("msg {chat} {text}\n").into_bytes(),
                    });
                }
                let mut from = [4u8; 65];
                from[1..].copy_from_slice(&self.key);
                self.sent += 1;
                let mut message_id = [0; 32];
                message_id[..8].copy_from_slice(&self.sent.to_be_bytes());
                let m = ChatMessage {
                    chat,
                    from,
                    text,
                    clock: self.sent,
                    timestamp_ms: now.as_millis(),
                    message_id,
                };
                self.actions
                    .push_back(Action::Persist(Persist::ChatMessage(m.clone())));
                self.actions.push_back(Action::Event(Event::MessageSent(m)));
            }
        }
        Ok(())
    }
    fn handle_timeout(&mut self, now: Time) {
        self.commands_since_timeout = 0;
        if self.always_due {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            return;
        }
        match self.next_tick {
            Some(t) if now >= t => {
                self.ticks.fetch_add(1, Ordering::SeqCst);
                self.next_tick = Some(now.plus_millis(TICK_MS));
            }
            None => self.next_tick = Some(now.plus_millis(TICK_MS)),
            Some(_) => {}
        }
    }
    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        if self.always_due {
            return Some(Time::ZERO);
        }
        // First deadline "now" (Time 0 is in the past), then every TICK_MS.
        Some(self.next_tick.unwrap_or(Time::ZERO))
    }
    fn disconnect_all(&mut self, _now: Time) {
        // A goodbye line, then Close: the driver must flush the one before doing the other.
        for &conn in self.remotes.keys() {
            self.actions.push_back(Action::Send {
                conn,
                bytes: b"bye quitting\n".to_vec(),
            });
            self.actions.push_back(Action::Close { conn });
        }
    }
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

async fn wait_for(what: &str, buf: &Buf, pattern: &str) {
    let deadline = Instant::now() + std::time::Duration::from_millis(WAIT_MS);
    while !buf.text().contains(pattern) {
        assert!(
            Instant::now() < deadline,
            "{what}: no {pattern:?} within {WAIT_MS} ms; got:\n{}",
            buf.text()
        );
        Timer::after(std::time::Duration::from_millis(10)).await;
    }
}

struct TestNode {
    out: Buf,
    err: Buf,
    lines: Sender<StdinLine>,
    ticks: Arc<AtomicU64>,
    data_dir: PathBuf,
}

fn node(
    key_byte: u8,
    listener: TcpListener,
    peers: Vec<Enode>,
) -> (
    TestNode,
    impl std::future::Future<Output = anyhow::Result<()>>,
) {
    node_with(
        Fake::new(key_byte, Arc::new(AtomicU64::new(0))),
        listener,
        peers,
        None,
    )
}

fn node_with(
    fake: Fake,
    listener: TcpListener,
    peers: Vec<Enode>,
    stop_requests: Option<Receiver<String>>,
) -> (
    TestNode,
    impl std::future::Future<Output = anyhow::Result<()>>,
) {
    let ticks = fake.ticks.clone();
    let (out, err) = (Buf::default(), Buf::default());
    let (lines, line_rx) = smol::channel::unbounded();
    let data_dir = temp_dir("driver");
    let config = DriverConfig {
        data_dir: data_dir.clone(),
        peers,
        join: vec!["e2e".into()],
        json: true,
        archive_path: None,
        store_path: None,
        installation_id: "test-installation".into(),
        loss: None,
        stop_requests,
        crash_after_delivery_commits: None,
        store_passphrase: None,
        advertised_ip: None,
        rpc: None,
    };
    let io = Outputs {
        out: Box::new(out.clone()),
        err: Box::new(err.clone()),
    };
    let fut = run(fake, listener, Clock::new(), config, line_rx, io);
    (
        TestNode {
            out,
            err,
            lines,
            ticks,
            data_dir,
        },
        fut,
    )
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[test]
fn two_drivers_exchange_messages_and_close() {
    smol::block_on(async {
        let la = bind().await;
        let a_addr = la.local_addr().unwrap();
        let (a, run_a) = node(0xaa, la, vec![]);
        let (b, run_b) = node(0xbb, bind().await, vec![Enode::new([0xaa; 64], a_addr)]);
        let script = async {
            wait_for(
                "A enode",
                &a.out,
                &format!("enode://{}@{a_addr}\n", "aa".repeat(64)),
            )
            .await;
            assert!(
                a.out.text().starts_with("enode://"),
                "enode is the first stdout line"
            );
            wait_for(
                "A connected",
                &a.err,
                &format!("{PEER_CONNECTED_PREFIX} conn=1 key={}", "bb".repeat(64)),
            )
            .await;
            wait_for(
                "B connected",
                &b.err,
                // B dialed A for its stack (`Action::Dial`), under the stack's conn id.
                &format!(
                    "{PEER_CONNECTED_PREFIX} conn={} key={}",
                    hush_core::p2p::peers::DIAL_CONN_ID_BASE,
                    "aa".repeat(64)
                ),
            )
            .await;

            b.lines.send("/send e2e hello from B".into()).await.unwrap();
            let from_b = format!("\"from\":\"0x04{}\"", "bb".repeat(64));
            wait_for("A got B's message", &a.out, &from_b).await;
            wait_for("B sent", &b.err, "hush: sent #e2e").await;
            let json_line = a.out.text().lines().nth(1).unwrap().to_string();
            let v: serde_json::Value = serde_json::from_str(&json_line).unwrap();
            assert_eq!(v["text"], "hello from B");
            assert_eq!(v["chat"], "e2e");
            let persisted = std::fs::read_to_string(a.data_dir.join(MESSAGES_FILE)).unwrap();
            assert!(
                persisted.contains("hello from B") && persisted.ends_with('\n'),
                "{persisted}"
            );

            a.lines.send("hello?".into()).await.unwrap();
            wait_for("A rejects junk", &a.err, "unknown command").await;

            // A closes; both sides see the socket go away.
            a.lines.send("/leave drop".into()).await.unwrap();
            wait_for("A disconnected", &a.err, "hush: peer disconnected conn=1").await;
            wait_for(
                "B disconnected",
                &b.err,
                &format!(
                    "hush: peer disconnected conn={}",
                    hush_core::p2p::peers::DIAL_CONN_ID_BASE
                ),
            )
            .await;

            // The timer fired repeatedly.
            let deadline = Instant::now() + std::time::Duration::from_millis(WAIT_MS);
            while a.ticks.load(Ordering::SeqCst) < 2 {
                assert!(Instant::now() < deadline, "timer never fired");
                Timer::after(std::time::Duration::from_millis(10)).await;
            }
            // EOF on stdin does not stop B: its loop keeps firing timers afterwards.
            b.lines.close();
            Timer::after(std::time::Duration::from_millis(50)).await;
            let t = b.ticks.load(Ordering::SeqCst);
            while b.ticks.load(Ordering::SeqCst) <= t {
                assert!(Instant::now() < deadline, "B stopped after stdin EOF");
                Timer::after(std::time::Duration::from_millis(10)).await;
            }
            a.lines.send("/quit".into()).await.unwrap();
        };
        // A ends on /quit; B must outlive the script (it is dropped when A is done).
        let a_then_script = async {
            let (ra, ()) = futures_lite::future::zip(run_a, script).await;
            ra
        };
        let b_never_ends = async {
            let rb = run_b.await;
            panic!("B stopped on its own: {rb:?}\n{}", b.err.text());
        };
        a_then_script.or(b_never_ends).await.unwrap();
        assert!(!b.err.text().contains("error"), "{}", b.err.text());
        for n in [&a, &b] {
            let _ = std::fs::remove_dir_all(&n.data_dir);
        }
    });
}

#[test]
fn failed_dials_are_reported_to_the_stack_which_decides_to_redial() {
    smol::block_on(async {
        let dead = bind().await;
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let (n, run_n) = node(0xcc, bind().await, vec![Enode::new([0xdd; 64], dead_addr)]);
        let failure = format!("hush: dial {dead_addr} failed");
        let script = async {
            // The fake redials at once after each reported failure, FAKE_DIAL_ATTEMPTS times.
            let deadline = Instant::now() + std::time::Duration::from_millis(WAIT_MS);
            while n.err.text().matches(&failure).count() < FAKE_DIAL_ATTEMPTS as usize {
                assert!(Instant::now() < deadline, "dial failures: {}", n.err.text());
                Timer::after(std::time::Duration::from_millis(10)).await;
            }
            n.lines.send("/quit".into()).await.unwrap();
        };
        let (r, ()) = futures_lite::future::zip(run_n, script).await;
        r.unwrap();
        assert_eq!(
            n.err.text().matches(&failure).count(),
            FAKE_DIAL_ATTEMPTS as usize
        );
        let _ = std::fs::remove_dir_all(&n.data_dir);
    });
}

#[test]
fn clock_is_monotonic_and_maps_deadlines() {
    let c = Clock::new();
    let t0 = c.now();
    assert!(t0.as_millis() > 1_500_000_000_000, "wall-clock based");
    let t1 = c.now();
    assert!(t1 >= t0);
    assert!(c.instant_at(Time::ZERO) <= Instant::now());
    let later = c.instant_at(t0.plus_millis(60_000));
    assert!(later > Instant::now() + std::time::Duration::from_secs(50));
    let _ = c.instant_at(Time(u64::MAX));
}

/// Issue 14 §1: while input keeps arriving (here: lines queued before the loop starts, as a
/// pipe would), a due deadline still runs after at most one batch of inputs. The loop used
/// to poll input first, so the timer waited until the channel was empty.
#[test]
fn a_due_timer_runs_between_batches_of_waiting_input() {
    const LINES: usize = 1000;
    smol::block_on(async {
        let mut fake = Fake::new(0xee, Arc::new(AtomicU64::new(0)));
        fake.always_due = true;
        let most = fake.most_commands_between_timeouts.clone();
        let (n, run_n) = node_with(fake, bind().await, vec![], None);
        for i in 0..LINES {
            n.lines
                .send(format!("/send e2e line {i}").into())
                .await
                .unwrap();
        }
        n.lines.send("/stats".into()).await.unwrap();
        n.lines.send("/quit".into()).await.unwrap();
        run_n.await.unwrap();
        let sent = n.err.text().matches("hush: sent #e2e").count();
        assert_eq!(sent, LINES, "{}", n.err.text());
        let most = most.load(Ordering::SeqCst);
        assert!(
            most <= MAX_INPUTS_PER_DRAIN as u64,
            "{most} commands ran back to back while the deadline was due"
        );
        assert!(n.ticks.load(Ordering::SeqCst) >= (LINES / MAX_INPUTS_PER_DRAIN) as u64);
        // Group commit: the sends' records went to disk in far fewer transactions than sends.
        let out = n.out.text();
        let stats: serde_json::Value = serde_json::from_str(
            out.lines()
                .find(|l| l.contains("\"reply\":\"stats\""))
                .expect("a /stats reply"),
        )
        .unwrap();
        // The counter's name, with or without a layer prefix (`driver.store_commits`).
        let commits = stats
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.ends_with("store_commits")))
            .and_then(|(_, v)| v.as_u64())
            .expect("store_commits in /stats");
        assert!(
            commits * 8 <= LINES as u64,
            "{commits} store commits for {LINES} piped sends"
        );
        let persisted = std::fs::read_to_string(n.data_dir.join(MESSAGES_FILE)).unwrap();
        assert_eq!(persisted.lines().count(), LINES);
        let _ = std::fs::remove_dir_all(&n.data_dir);
    });
}

/// Issue 13 §5: `/quit` and a stop request (a signal in `hush node`) make the stack say goodbye
/// to every peer, and the driver flushes that before it returns.
#[test]
fn quit_and_stop_requests_flush_the_goodbye_to_every_peer() {
    for by_signal in [false, true] {
        smol::block_on(async {
            let la = bind().await;
            let a_addr = la.local_addr().unwrap();
            let (stop_tx, stop_rx) = smol::channel::bounded::<String>(1);
            let (a, run_a) = node_with(
                Fake::new(0xaa, Arc::new(AtomicU64::new(0))),
                la,
                vec![],
                Some(stop_rx),
            );
            let (b, run_b) = node(0xbb, bind().await, vec![Enode::new([0xaa; 64], a_addr)]);
            let script = async {
                wait_for(
                    "A connected",
                    &a.err,
                    &format!("{PEER_CONNECTED_PREFIX} conn=1 key={}", "bb".repeat(64)),
                )
                .await;
                wait_for("B connected", &b.err, PEER_CONNECTED_PREFIX).await;
                if by_signal {
                    stop_tx.send("SIGINT".into()).await.unwrap();
                } else {
                    a.lines.send("/quit".into()).await.unwrap();
                }
            };
            let a_then_script = async {
                let (ra, ()) = futures_lite::future::zip(run_a, script).await;
                ra.unwrap();
                // A has returned: its goodbye is on the wire; B reads it.
                wait_for("B told", &b.err, "reason=\"quitting (by peer)\"").await;
            };
            let b_never_ends = async {
                let rb = run_b.await;
                panic!("B stopped on its own: {rb:?}\n{}", b.err.text());
            };
            a_then_script.or(b_never_ends).await;
            if by_signal {
                assert!(
                    a.err.text().contains("hush: SIGINT: stopping"),
                    "{}",
                    a.err.text()
                );
            }
            for n in [&a, &b] {
                let _ = std::fs::remove_dir_all(&n.data_dir);
            }
        });
    }
}

/// Back-pressure: stdin waits once the writers hold the pause mark, and goes on when they are
/// below the resume mark (not before), woken by the writer's progress.
#[test]
fn stdin_waits_for_the_writers_backlog_to_drain() {
    smol::block_on(async {
        let backlog = Arc::new(WriteBacklog::new());
        // Below the pause mark: no wait.
        backlog.add(STDIN_PAUSE_WRITE_QUEUE_BYTES - 1);
        assert!(futures_lite::future::poll_once(backlog.wait_for_room())
            .await
            .is_some());
        backlog.add(1);
        let waiter = {
            let backlog = backlog.clone();
            smol::spawn(async move { backlog.wait_for_room().await })
        };
        Timer::after(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "stdin goes on at the pause mark");
        // Written down to the resume mark: still waiting.
        backlog.sub(STDIN_PAUSE_WRITE_QUEUE_BYTES - STDIN_RESUME_WRITE_QUEUE_BYTES);
        Timer::after(std::time::Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "stdin goes on before the resume mark"
        );
        // One byte below it: the writer wakes stdin.
        backlog.sub(1);
        let deadline = Instant::now() + std::time::Duration::from_millis(WAIT_MS);
        while !waiter.is_finished() {
            assert!(Instant::now() < deadline, "stdin never woken");
            Timer::after(std::time::Duration::from_millis(5)).await;
        }
        waiter.await;
        assert_eq!(backlog.pauses.load(Ordering::SeqCst), 1);
    });
}
