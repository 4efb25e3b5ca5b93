//! MVDS targets: the payload codec (both numberings) and the stream framing, persisted sync
//! records, and the machine's `handle_payload`.

use hush_core::mvds::{
    decode_payload, encode_frame, encode_payload, FrameDecoder, Message, MessageId, Metadata, Mode,
    Mvds, Numbering, Parents, Payload, PeerId, PersistRecord, Resolution, SendOptions, PEER_ID_LEN,
};

use crate::{split_messages, T0};

const NUMBERINGS: [Numbering; 2] = [Numbering::Status2019, Numbering::VacHead];

/// `decode_payload` in both numberings (a decoded payload re-encodes to bytes that decode to
/// it), message ids of decoded messages, and the bytes as a framed stream in chunks.
pub fn mvds_payload(data: &[u8]) {
    for numbering in NUMBERINGS {
        if let Ok(p) = decode_payload(data, numbering) {
            let _ = p.is_valid();
            for m in &p.messages {
                let _ = m.id();
            }
            // Status2019 writes empty metadata as none (v0.0.23 has no such field).
            let mut want = p.clone();
            if numbering == Numbering::Status2019 {
                for m in &mut want.messages {
                    if m.metadata.as_ref().is_some_and(Metadata::is_empty) {
                        m.metadata = None;
                    }
                }
            }
            assert_eq!(
                decode_payload(&encode_payload(&p, numbering), numbering),
                Ok(want)
            );
        }
    }
    let mut frames = FrameDecoder::new(4096);
    for piece in data.chunks(7) {
        frames.push(piece);
        loop {
            match frames.next_frame() {
                Ok(Some(body)) => {
                    let _ = decode_payload(&body, Numbering::Status2019);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    // A frame of the bytes reads back as the bytes.
    if data.len() <= 4096 {
        let mut d = FrameDecoder::new(4096);
        d.push(&encode_frame(data));
        assert_eq!(d.next_frame(), Ok(Some(data.to_vec())));
    }
}

/// `PersistRecord::decode`: a decoded record re-encodes to bytes that decode to it.
pub fn mvds_persist(data: &[u8]) {
    if let Ok(r) = PersistRecord::decode(data) {
        assert_eq!(PersistRecord::decode(&r.encode()).as_ref(), Ok(&r));
    }
}

const GROUP: [u8; 32] = [0x67; 32];
const US: PeerId = PeerId([0x01; PEER_ID_LEN]);
const THEM: PeerId = PeerId([0x02; PEER_ID_LEN]);

/// `Mvds::handle_payload` on a machine that has sent two messages to a peer. Input `flags,
/// rest`: flags bit 0 interactive mode, bit 1 consistent resolution, bit 2 the VacHead
/// numbering; bit 3 set: `rest` is `(code, len, payload)*` and each payload goes raw to
/// `handle_payload`; clear: `rest` is ops of two bytes building one payload (acks, offers,
/// requests of known or unknown ids, messages with parents), encoded and handled; then the
/// epochs tick.
pub fn mvds_sync(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let numbering = NUMBERINGS[usize::from(flags >> 2 & 1)];
    let config = hush_core::mvds::Config {
        numbering,
        mode: if flags & 1 != 0 {
            Mode::Interactive
        } else {
            Mode::Batch
        },
        resolution: if flags & 2 != 0 {
            Resolution::Consistent
        } else {
            Resolution::Eventual
        },
        max_stored_messages: 16,
        max_pending_messages: 8,
        max_sync_states: 32,
        ..Default::default()
    };
    let mut m = Mvds::new(config, T0).expect("valid config");
    m.add_peer(T0, GROUP, THEM).expect("peer");
    let mut ids: Vec<MessageId> = Vec::new();
    for body in [&b"one"[..], b"two"] {
        let options = SendOptions {
            parents: Parents::Auto,
            ..Default::default()
        };
        ids.push(m.send(T0, GROUP, body.to_vec(), options).expect("send"));
    }
    m.handle_timeout(T0.plus_millis(m.config().epoch_interval_ms));
    while m.poll_action().is_some() {}
    let now = T0.plus_millis(2 * m.config().epoch_interval_ms);
    if flags & 8 != 0 {
        for (_, payload) in split_messages(rest) {
            let _ = m.handle_payload(now, THEM, payload);
            let _ = m.handle_payload(now, US, payload);
        }
    } else {
        let mut p = Payload::default();
        for op in rest.chunks(2) {
            let (kind, arg) = (op[0], op.get(1).copied().unwrap_or(0));
            let id = |a: u8| -> MessageId {
                match ids.get(usize::from(a % 4)) {
                    Some(id) => *id,
                    None => [a; 32],
                }
            };
            match kind % 5 {
                0 => p.acks.push(id(arg)),
                1 => p.offers.push(id(arg)),
                2 => p.requests.push(id(arg)),
                _ => {
                    let msg = Message {
                        group_id: if kind & 0x80 == 0 { GROUP } else { [arg; 32] },
                        timestamp: T0.as_secs() as i64 + i64::from(arg),
                        body: vec![kind, arg],
                        metadata: (kind % 5 == 4).then(|| Metadata {
                            parents: vec![id(arg), id(arg.wrapping_add(1))],
                            ephemeral: arg & 0x40 != 0,
                        }),
                    };
                    ids.push(msg.id());
                    p.messages.push(msg);
                }
            }
        }
        let bytes = encode_payload(&p, numbering);
        let _ = m.handle_payload(now, THEM, &bytes);
    }
    while m.poll_action().is_some() {}
    for epochs in 3..6 {
        m.handle_timeout(T0.plus_millis(epochs * m.config().epoch_interval_ms));
        while m.poll_action().is_some() {}
    }
}
