//! End to end, the lock-out attack of issue 16 (item 2): a client holds ~60 idle TCP
//! connections to node A's listen port (never sending a byte, reopening any that A closes)
//! while node B, from another address, must connect to A and exchange public messages with it.
//! Before the fix, 50 idle sockets filled A's global table of pending handshakes for their whole
//! 5 s handshake timeout and were reopened at once, so B's dials were refused for the whole
//! attack. Loopback only: Linux routes all of 127/8 to `lo`, so the attacker binds its sockets
//! to 127.0.0.x addresses other than B's 127.0.0.1.
//!
//! Two attacks: all sockets from one address (the per-IP bound on pending handshakes keeps
//! room for everyone else) and one socket from each of 60 addresses (the oldest pending
//! handshake is evicted for a newcomer when the table is full).

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hush_core::p2p::enode::Enode;
use hush_tests::{key_of, NodeProcess};

/// Bound on the whole test: generous, the machine may be busy.
const TIMEOUT_SECS: u64 = 120;
/// B must be connected to A this long after it starts. On the fixed code it takes about a
/// second; before the fix B's dials (1 s back-off doubling) all failed for 35 s.
const CONNECT_TIMEOUT_SECS: u64 = 30;
/// Idle sockets the attacker holds (the figure; A's table holds 50).
const ATTACK_SOCKETS: usize = 60;
/// The attacker checks its sockets and reopens the closed ones this often.
const ATTACK_SWEEP_MS: u64 = 50;
const CHAT: &str = "lockout";

/// A client holding idle TCP connections to `target`, slot `i` bound to
/// `sources[i % sources.len()]`, reopening any connection the node closes.
struct Attacker {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// A TCP connection from `source` (any port) to `target`, non-blocking once connected.
fn connect_from(source: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddrV4::new(source, 0))?;
    connect(&fd, &target)?;
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Whether the node has closed `stream` (EOF or an error other than "no data yet").
fn is_closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        // The node answers nothing to an idle socket, but data is no reason to let go.
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

impl Attacker {
    fn start(sources: Vec<Ipv4Addr>, sockets: usize, target: SocketAddr) -> Attacker {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let (stop_t, opened_t, closed_t) = (stop.clone(), opened.clone(), closed.clone());
        let thread = std::thread::spawn(move || {
            let mut slots: Vec<Option<TcpStream>> = (0..sockets).map(|_| None).collect();
            while !stop_t.load(Ordering::SeqCst) {
                for (i, slot) in slots.iter_mut().enumerate() {
                    if slot.as_mut().is_some_and(is_closed) {
                        *slot = None;
                        closed_t.fetch_add(1, Ordering::SeqCst);
                    }
                    if slot.is_none() {
                        let source = sources[i % sources.len()];
                        if let Ok(stream) = connect_from(source, target) {
                            *slot = Some(stream);
                            opened_t.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(ATTACK_SWEEP_MS));
            }
        });
        Attacker {
            stop,
            opened,
            closed,
            thread: Some(thread),
        }
    }

    fn opened(&self) -> u64 {
        self.opened.load(Ordering::SeqCst)
    }

    fn closed(&self) -> u64 {
        self.closed.load(Ordering::SeqCst)
    }

    /// Waits until the node has closed at least `n` of the attacker's connections.
    fn wait_closed(&self, n: u64, deadline: Instant) {
        while self.closed() < n {
            assert!(
                Instant::now() < deadline,
                "the node closed {} of {} attack connections",
                self.closed(),
                self.opened()
            );
            std::thread::sleep(Duration::from_millis(ATTACK_SWEEP_MS));
        }
    }

    fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for `text` from `from` on `node`'s JSON stdout.
fn expect_message(node: &NodeProcess, deadline: Instant, text: &str, from: &Enode) {
    let line = node.wait_stdout(deadline, |l| l.contains(text) && !l.contains("\"reply\""));
    let v: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", node.transcript()));
    assert_eq!(v["chat"], CHAT, "{line}");
    assert_eq!(v["from"], key_of(from), "{line}");
}

/// A's `/stats` as JSON.
fn stats(node: &mut NodeProcess, deadline: Instant) -> serde_json::Value {
    node.send_line("/stats");
    let line = node.wait_stdout(deadline, |l| l.contains("\"reply\":\"stats\""));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Runs the attack from `sources` against A and checks B gets in and both exchange messages
/// while it runs. Returns A's `/stats` taken while the attack still ran.
fn legitimate_peer_gets_in_during_attack(sources: Vec<Ipv4Addr>) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn("A", &["--listen", "127.0.0.1:0", "--join", CHAT, "--json"]);
    let enode_a = a.enode(deadline);

    let attacker = Attacker::start(sources.clone(), ATTACK_SOCKETS, enode_a.addr);
    // The attack is on once A is full and has closed one of the idle sockets (on the old code
    // a refusal; on the fixed one a refusal over the per-IP bound or an eviction).
    attacker.wait_closed(1, deadline);
    let closed_before_b = attacker.closed();

    // B dials from 127.0.0.1 (the kernel's source address for loopback), not an attacker's.
    assert!(!sources.contains(&Ipv4Addr::LOCALHOST));
    let peer = enode_a.to_string();
    let mut b = NodeProcess::spawn(
        "B",
        &[
            "--listen",
            "127.0.0.1:0",
            "--peer",
            &peer,
            "--join",
            CHAT,
            "--json",
        ],
    );
    let enode_b = b.enode(deadline);
    let connect_deadline = Instant::now() + Duration::from_secs(CONNECT_TIMEOUT_SECS);
    a.wait_connected(connect_deadline.min(deadline), &enode_b);
    b.wait_connected(connect_deadline.min(deadline), &enode_a);

    a.send_line(&format!("/send {CHAT} hello from A"));
    b.send_line(&format!("/send {CHAT} hello from B"));
    expect_message(&b, deadline, "hello from A", &enode_a);
    expect_message(&a, deadline, "hello from B", &enode_b);

    // All of it happened while the attack ran: A went on closing (and the attacker reopening)
    // idle sockets.
    let stats = stats(&mut a, deadline);
    assert!(attacker.is_running(), "the attacker thread ended early");
    assert!(
        attacker.closed() > closed_before_b,
        "no attack connection was closed after B started ({} opened)",
        attacker.opened()
    );
    stats
}

#[test]
fn idle_sockets_from_one_address_do_not_lock_out_a_peer() {
    let stats = legitimate_peer_gets_in_during_attack(vec![Ipv4Addr::new(127, 0, 0, 2)]);
    let per_ip = stats["p2p.peers.rejected_pending_per_ip"].as_u64();
    assert!(per_ip.is_some_and(|n| n > 0), "{stats}");
}

#[test]
fn idle_sockets_from_many_addresses_do_not_lock_out_a_peer() {
    let sources = (0..ATTACK_SOCKETS)
        .map(|i| Ipv4Addr::new(127, 0, 1, u8::try_from(i + 10).unwrap()))
        .collect();
    let stats = legitimate_peer_gets_in_during_attack(sources);
    let evicted = stats["p2p.peers.evicted_pending_limit"].as_u64();
    assert!(evicted.is_some_and(|n| n > 0), "{stats}");
}
