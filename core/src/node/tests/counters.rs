//! `/stats` listing of the whole node and the drop counters the node itself keeps.

use super::*;
use crate::security::proto::{DirectMessageProtocol, ProtocolMessage};
use prost::Message as _;

#[test]
fn node_counters_list_every_layer_once_in_stack_order() {
    let net = line(2);
    let counters = net.nodes[0].counters();
    let layers: Vec<&str> = counters
        .iter()
        .map(|(n, _)| n.split('.').next().unwrap())
        .collect();
    let mut order = layers.clone();
    order.dedup();
    assert_eq!(
        order,
        ["p2p", "whisper", "security", "mvds", "chat", "node"]
    );
    let names: BTreeSet<&str> = counters.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), counters.len(), "a name listed twice");
    assert!(counters.contains(&("p2p.connections".to_owned(), 1)));
    assert!(names.contains("mvds.payloads_too_large"));
    assert!(names.contains("security.rejected_replay"));
    assert!(names.contains("whisper.dropped_low_pow"));
    let stats = net.nodes[0].stats();
    crate::stats::assert_lists_every_field(&format!("{stats:?}"), &stats.counters());
}

#[test]
fn bytes_for_an_unknown_connection_are_counted() {
    let mut net = Net::new(1);
    net.nodes[0].handle_bytes(net.now, 77, b"stray");
    assert_eq!(net.nodes[0].stats().bytes_for_unknown_connections, 1);
    assert!(net.nodes[0]
        .counters()
        .contains(&("node.bytes_for_unknown_connections".to_owned(), 1)));
}

#[test]
fn session_and_whisper_faults_are_listed_by_reason() {
    let mut net = line(2);
    // Node 0 sends node 1 a Whisper Messages packet that does not decode.
    net.command(
        0,
        Command::SendCapabilityMessage {
            conn: 1,
            capability: WHISPER_CAPABILITY.into(),
            code: crate::whisper::codes::MESSAGES,
            payload: vec![0xff],
        },
    );
    net.advance(100);
    let c1 = net.nodes[1].counters();
    assert!(c1.contains(&("whisper.whisper_peer_faults.malformed_packet".to_owned(), 1)));
    assert!(c1.contains(&("whisper.peer_faults".to_owned(), 1)));
    assert!(c1.contains(&("p2p.disconnects_sent.subprotocol_error".to_owned(), 1)));
    let c0 = net.nodes[0].counters();
    assert!(c0.contains(&("p2p.disconnects_received.subprotocol_error".to_owned(), 1)));
    // Garbage on the wire: a session fault, by fault.
    let mut net = line(2);
    net.nodes[0].handle_bytes(net.now, 1, &[0xde; 300]);
    net.flush();
    assert!(net.nodes[0]
        .counters()
        .contains(&("p2p.peer_faults.bad_header_mac".to_owned(), 1)));
}

#[test]
fn conversation_drops_are_counted_and_logged_with_the_envelope_hash() {
    let mut net = line(2);
    let to = pubkey_from_wire(&net.nodes[1].public_key()).unwrap();
    // A signed ProtocolMessage whose direct part has no key header.
    let mut pm = ProtocolMessage {
        installation_id: "other-device".into(),
        ..Default::default()
    };
    pm.direct_message.insert(
        crate::security::NO_INSTALLATION_ID.into(),
        DirectMessageProtocol::default(),
    );
    let now = net.now;
    let sender = SecretKey::from_byte_array(&key(0)).unwrap();
    let params = whisper::MessageParams {
        payload: pm.encode_to_vec(),
        padding: None,
        sign_with: Some(sender),
        topic: crate::chat::topics::partitioned_topic(&to),
        ttl_secs: 10,
        pow_target: 0.002,
    };
    let hash = net.nodes[0]
        .whisper
        .post_with(now, params, &whisper::Encryption::Asymmetric(to))
        .unwrap();
    let ((), events) = crate::stats::capture_drops(|| net.advance(3_000));
    let c1 = net.nodes[1].counters();
    assert!(c1.contains(&("security.rejected_no_key_specified".to_owned(), 1)));
    assert!(c1.contains(&("chat.security_rejected".to_owned(), 1)));
    let id = hex::encode(hash);
    for (layer, reason) in [
        ("security", "rejected_no_key_specified"),
        ("chat", "security_rejected"),
    ] {
        assert!(
            events
                .iter()
                .any(|(l, r, i)| l == layer && r == reason && *i == id),
            "{layer}.{reason} not logged with {id}: {events:?}"
        );
    }
    assert_eq!(conversation_events(&net, 1), 0);
}
