//! Payloads as large as a vacp2p/mvds v0.0.23 peer sends them (issue 13 item 6): v0.0.23 puts
//! every message due for a peer into one `Payload`, with no size cap, so twelve 100 kB messages
//! arrive as one 1.2 MB payload. The bytes here are built by hand from v0.0.23's
//! `protobuf/sync.proto` (Payload 5001–5004, Message 6001–6003), as Go's `proto.Marshal`
//! writes them (fields in tag order), and framed as `gogo/protobuf/io` delimited messages.

use super::*;

const BODY_BYTES: usize = 100_000;
const BATCH: usize = 12;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_key(tag: u64, wire_type: u64, out: &mut Vec<u8>) {
    varint((tag << 3) | wire_type, out);
}

fn bytes_field(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
    field_key(tag, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `mvds.Message{group_id 6001, timestamp 6002, body 6003}` as v0.0.23 marshals it.
fn go_message(group: &[u8; 32], timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    bytes_field(6001, group, &mut m);
    field_key(6002, 0, &mut m);
    varint(timestamp as u64, &mut m);
    bytes_field(6003, body, &mut m);
    m
}

/// One v0.0.23 `Payload` with `BATCH` messages of `BODY_BYTES` each; returns it and the bodies.
fn go_batch() -> (Vec<u8>, Vec<Vec<u8>>) {
    let bodies: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            let mut body = vec![i as u8; BODY_BYTES];
            body[..8].copy_from_slice(&(i as u64).to_be_bytes());
            body
        })
        .collect();
    let mut payload = Vec::new();
    for body in &bodies {
        bytes_field(5004, &go_message(&GROUP, 1_571_000_000, body), &mut payload);
    }
    (payload, bodies)
}

/// A delimited frame (`varint(len) ‖ bytes`), built independently of `encode_frame`.
fn delimited(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

#[test]
fn a_go_batch_of_twelve_100_kb_messages_is_accepted_and_all_delivered() {
    let (payload, bodies) = go_batch();
    assert!(payload.len() > 1_200_000, "{} bytes", payload.len());
    // Through the byte-stream framing, in uneven chunks.
    let mut decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    for chunk in delimited(&payload).chunks(65_537) {
        decoder.push(chunk);
        while let Some(frame) = decoder.next_frame().expect("frame within the bound") {
            frames.push(frame);
        }
    }
    assert_eq!(frames, vec![payload.clone()]);
    assert_eq!(decoder.buffered(), 0);

    let mut m = Mvds::new(Config::default(), T0).unwrap();
    m.add_peer(T0, GROUP, peer(2)).unwrap();
    m.handle_payload(T0, peer(2), &frames[0])
        .expect("payload within the bound");
    let delivered: Vec<Vec<u8>> = collect(&mut m)
        .into_iter()
        .filter_map(|a| match a {
            Action::Deliver { message, from, .. } => {
                assert_eq!(from, peer(2));
                Some(message.body)
            }
            _ => None,
        })
        .collect();
    assert_eq!(delivered, bodies, "all twelve, once, in order");
    assert_eq!(m.stats().delivered, BATCH as u64);
    assert_eq!(m.stats().payloads_too_large, 0);
    // All twelve are acked at the next tick, so the Go node stops resending the batch.
    m.handle_timeout(T0.plus_millis(DEFAULT_EPOCH_INTERVAL_MS));
    let acks: Vec<MessageId> = sends(&collect(&mut m))
        .into_iter()
        .flat_map(|p| p.acks)
        .collect();
    let expected: Vec<MessageId> = bodies
        .iter()
        .map(|b| message_id(&GROUP, 1_571_000_000, b))
        .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    let mut acks_sorted = acks.clone();
    acks_sorted.sort();
    assert_eq!(acks_sorted, sorted);
}

#[test]
fn above_the_go_bound_is_a_clear_counted_error() {
    assert_eq!(
        DEFAULT_MAX_INCOMING_PAYLOAD_BYTES,
        MAX_STATUS_GO_PAYLOAD_BYTES
    );
    assert_eq!(DEFAULT_MAX_FRAME_BYTES, MAX_STATUS_GO_PAYLOAD_BYTES);
    // The stream refuses the frame from its length prefix alone, before buffering it.
    let mut decoder = FrameDecoder::default();
    let mut header = Vec::new();
    varint(MAX_STATUS_GO_PAYLOAD_BYTES as u64 + 1, &mut header);
    decoder.push(&header);
    assert_eq!(
        decoder.next_frame(),
        Err(MvdsError::FrameTooLarge {
            size: MAX_STATUS_GO_PAYLOAD_BYTES + 1,
            max: MAX_STATUS_GO_PAYLOAD_BYTES
        })
    );
    // A payload over the bound handed to the machine: refused before decoding, counted.
    let mut m = Mvds::new(Config::default(), T0).unwrap();
    let over = vec![0u8; MAX_STATUS_GO_PAYLOAD_BYTES + 1];
    assert_eq!(
        m.handle_payload(T0, peer(2), &over),
        Err(MvdsError::PayloadTooLarge {
            size: MAX_STATUS_GO_PAYLOAD_BYTES + 1,
            max: MAX_STATUS_GO_PAYLOAD_BYTES
        })
    );
    assert_eq!(m.stats().payloads_too_large, 1);
    assert_eq!(m.stats().payloads_received, 0);
    assert!(collect(&mut m).is_empty());
    // At the bound it is decoded (zeros are not a valid protobuf: counted apart).
    let at = vec![0u8; MAX_STATUS_GO_PAYLOAD_BYTES];
    assert!(matches!(
        m.handle_payload(T0, peer(2), &at),
        Err(MvdsError::Protobuf(_))
    ));
    assert_eq!(m.stats().payloads_too_large, 1);
    assert_eq!(m.stats().payloads_undecodable, 1);
    let counters = m.stats().counters();
    assert!(counters.contains(&("payloads_too_large".to_owned(), 1)));
    assert!(counters.contains(&("payloads_undecodable".to_owned(), 1)));
}

#[test]
fn our_own_payloads_stay_split_below_max_payload_bytes() {
    let mut m = Mvds::new(Config::default(), T0).unwrap();
    m.add_peer(T0, GROUP, peer(2)).unwrap();
    for i in 0..BATCH {
        m.send(T0, GROUP, vec![i as u8; BODY_BYTES], SendOptions::default())
            .unwrap();
    }
    collect(&mut m);
    let due = m.poll_timeout().expect("records are due");
    m.handle_timeout(due);
    let actions = collect(&mut m);
    let sizes: Vec<usize> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes.len()),
            _ => None,
        })
        .collect();
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(
        sizes.iter().all(|s| *s <= DEFAULT_MAX_PAYLOAD_BYTES),
        "{sizes:?}"
    );
    let messages: usize = sends(&actions).iter().map(|p| p.messages.len()).sum();
    assert_eq!(messages, BATCH);
}
