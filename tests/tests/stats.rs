//! `/stats` of a real `hush node` lists every layer's counters as `layer.name`, and a dropped
//! input shows up there by reason and in the debug log (`RUST_LOG=hush::drop=debug`): a TCP
//! client sends an RLPx auth whose EIP-8 size prefix is below the legacy packet size.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hush_tests::NodeProcess;

/// Bound on the whole test.
const TIMEOUT_SECS: u64 = 60;
/// A legacy auth packet's size; ours is that long so the node tries both formats.
const LEGACY_AUTH_BYTES: usize = 307;

#[test]
fn stats_list_every_layer_and_count_a_dropped_handshake() {
    // The only test in this binary: the variable is read by the node processes it spawns.
    std::env::set_var("RUST_LOG", "info,hush::drop=debug");
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    let mut a = NodeProcess::spawn("A", &["--json", "--listen", "127.0.0.1:0"]);
    let enode = a.enode(deadline);

    // Not a valid legacy auth, and an EIP-8 size (16) below the legacy size: refused at once.
    let mut auth = vec![0x55u8; LEGACY_AUTH_BYTES];
    auth[..2].copy_from_slice(&16u16.to_be_bytes());
    let mut tcp = TcpStream::connect(enode.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(TIMEOUT_SECS)))
        .unwrap();
    tcp.write_all(&auth).unwrap();
    let mut rest = Vec::new();
    let _ = tcp.read_to_end(&mut rest); // the node closes without answering
    assert!(rest.is_empty(), "no ack for a bad auth: {rest:02x?}");

    a.wait_stderr(deadline, |l| {
        l.contains("hush::drop") && l.contains("handshake_size_underflow")
    });
    a.send_line("/stats");
    let line = a.wait_stdout(deadline, |l| l.contains("\"reply\":\"stats\""));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["p2p.peer_faults.handshake_size_underflow"], 1, "{line}");
    assert_eq!(v["p2p.disconnects_sent.protocol_error"], 1, "{line}");
    assert_eq!(v["p2p.sessions_closed"], 1, "{line}");
    for name in [
        "p2p.connections",
        "p2p.peers.rejected_too_many_peers",
        "whisper.dropped_low_pow",
        "whisper.p2p_duplicates",
        "security.rejected_replay",
        "mvds.payloads_too_large",
        "chat.undecodable",
        "chat.duplicates_dropped",
        "node.sends_to_gone_peers",
    ] {
        assert!(v[name].as_u64().is_some(), "{name} missing: {line}");
    }
    a.send_line("/quit");
}
