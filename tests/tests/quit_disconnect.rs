//! Issue 13 §5: a node that stops says so. On `/quit` and on SIGINT/SIGTERM `hush node` sends
//! Disconnect ClientQuitting (0x08) to every peer, flushes it, and exits; the peer logs the
//! reason instead of a bare network error. Before, the driver just dropped its sockets.

use std::time::{Duration, Instant};

use hush_tests::NodeProcess;

const TIMEOUT_SECS: u64 = 60;
/// What B prints when a peer disconnects with ClientQuitting (geth's text for 0x08).
const QUITTING: &str = "reason=\"client quitting (by peer)\"";

/// Starts a node with B as its peer, waits for the connection, stops it with `stop`, and
/// checks that B was told ClientQuitting and that the node exited cleanly.
fn stop_and_check(b: &NodeProcess, peer: &str, how: &str, stop: impl FnOnce(&mut NodeProcess)) {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn("A", &["--peer", peer]);
    let enode_a = a.enode(deadline);
    b.wait_connected(deadline, &enode_a);
    stop(&mut a);
    b.wait_stderr(deadline, |l| {
        l.starts_with("hush: peer disconnected") && l.contains(QUITTING)
    });
    let status = a
        .wait_exit(deadline)
        .unwrap_or_else(|| panic!("A still running after {how}\n{}", a.transcript()));
    assert!(
        status.success(),
        "A after {how}: {status}\n{}",
        a.transcript()
    );
}

#[test]
fn quit_and_sigint_and_sigterm_send_client_quitting() {
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let b = NodeProcess::spawn("B", &["--listen", "127.0.0.1:0"]);
    let peer = b.enode(deadline).to_string();
    stop_and_check(&b, &peer, "/quit", |a| a.send_line("/quit"));
    stop_and_check(&b, &peer, "SIGINT", |a| a.signal("INT"));
    stop_and_check(&b, &peer, "SIGTERM", |a| a.signal("TERM"));
}
