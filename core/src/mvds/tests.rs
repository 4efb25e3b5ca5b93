use std::collections::BTreeMap;

use proptest::prelude::*;
use rand_core::RngCore;

use super::*;
use crate::rng::{rng_from_seed, seed_from_u64};
use crate::Time;

mod counters;
mod large_payloads;

const DERIVED: &str = include_str!("../../../testdata/vectors/derived_local_checks.json");
const GROUP: GroupId = [7u8; 32];
const T0: Time = Time(1_571_000_000_000);

fn peer(i: u8) -> PeerId {
    let mut p = [i; PEER_ID_LEN];
    p[0] = 4;
    PeerId(p)
}

fn sample_message(body: &[u8], parents: Vec<MessageId>, ephemeral: bool) -> Message {
    Message {
        group_id: GROUP,
        timestamp: 1_571_000_000,
        body: body.to_vec(),
        metadata: if parents.is_empty() && !ephemeral {
            None
        } else {
            Some(Metadata { parents, ephemeral })
        },
    }
}

// ------------------------------------------------------------------------------------------------
// Codec.

#[test]
fn message_id_matches_vector() {
    let v: serde_json::Value = serde_json::from_str(DERIVED).unwrap();
    let v = &v["mvds_message_id"];
    let group = hex::decode(v["group_id"].as_str().unwrap()).unwrap();
    let ts = v["timestamp"].as_i64().unwrap();
    let body = v["body_utf8"].as_str().unwrap().as_bytes();
    let id = message_id(&group, ts, body);
    assert_eq!(hex::encode(id), v["id"].as_str().unwrap());
    let m = Message {
        group_id: group.try_into().unwrap(),
        timestamp: ts,
        body: body.to_vec(),
        metadata: Some(Metadata {
            parents: vec![[1; 32]],
            ephemeral: true,
        }),
    };
    // Metadata is not hashed.
    assert_eq!(hex::encode(m.id()), v["id"].as_str().unwrap());
}

#[test]
fn field_numbers_on_the_wire() {
    let id = [0xab; 32];
    let p = Payload {
        acks: vec![id],
        ..Payload::default()
    };
    // Tag 5001, wire type 2: varint(5001 << 3 | 2) = ca b8 02; then length 32.
    let status = encode_payload(&p, Numbering::Status2019);
    assert_eq!(&status[..4], &[0xca, 0xb8, 0x02, 0x20]);
    assert_eq!(&status[4..], &id);
    let head = encode_payload(&p, Numbering::VacHead);
    assert_eq!(&head[..2], &[0x0a, 0x20]);

    let m = sample_message(b"hi", vec![], false);
    let p = Payload {
        messages: vec![m.clone()],
        ..Payload::default()
    };
    let status = encode_payload(&p, Numbering::Status2019);
    // Field 5004 (e2 b8 02), then the message: 6001 group (8a f7 02 20 ..).
    assert_eq!(&status[..3], &[0xe2, 0xb8, 0x02]);
    assert_eq!(&status[4..8], &[0x8a, 0xf7, 0x02, 0x20]);
    // No metadata field 6004 (a2 f7 02) when there is nothing in it.
    assert!(!status.windows(3).any(|w| w == [0xa2, 0xf7, 0x02]));
    let head = encode_payload(&p, Numbering::VacHead);
    assert_eq!(head[0], 0x22);
    assert_eq!(decode_payload(&head, Numbering::VacHead).unwrap(), p);
    assert_eq!(decode_payload(&status, Numbering::Status2019).unwrap(), p);
    // Wrong numbering: all fields unknown, skipped.
    assert!(!decode_payload(&status, Numbering::VacHead)
        .unwrap()
        .is_valid());
    assert!(!decode_payload(&head, Numbering::Status2019)
        .unwrap()
        .is_valid());

    let with_meta = Payload {
        messages: vec![sample_message(b"x", vec![[3; 32]], true)],
        ..Payload::default()
    };
    for n in [Numbering::Status2019, Numbering::VacHead] {
        let bytes = encode_payload(&with_meta, n);
        assert_eq!(decode_payload(&bytes, n).unwrap(), with_meta);
    }
    let status = encode_payload(&with_meta, Numbering::Status2019);
    assert!(status.windows(3).any(|w| w == [0xa2, 0xf7, 0x02]));
}

#[test]
fn empty_payload_accepted() {
    for n in [Numbering::Status2019, Numbering::VacHead] {
        let p = decode_payload(&[], n).unwrap();
        assert_eq!(p, Payload::default());
        assert!(!p.is_valid());
        assert!(encode_payload(&p, n).is_empty());
    }
    let mut m = Mvds::new(Config::default(), T0).unwrap();
    m.handle_payload(T0, peer(1), &[]).unwrap();
    assert_eq!(m.poll_action(), None);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn bad_ids_are_typed_errors() {
    // acks = [3 bytes] in HEAD numbering.
    let bytes = [0x0a, 0x03, 1, 2, 3];
    assert_eq!(
        decode_payload(&bytes, Numbering::VacHead),
        Err(MvdsError::BadIdLength {
            what: "ack",
            len: 3
        })
    );
    assert!(matches!(
        decode_payload(&[0x0a, 0x05, 1], Numbering::VacHead),
        Err(MvdsError::Protobuf(_))
    ));
}

#[test]
fn frames() {
    let a = encode_frame(b"hello");
    let big = vec![9u8; 300];
    let b = encode_frame(&big);
    assert_eq!(a[0], 5);
    assert_eq!(&b[..2], &[0xac, 0x02]);
    let mut d = FrameDecoder::default();
    let mut stream = a.clone();
    stream.extend_from_slice(&b);
    stream.extend_from_slice(&encode_frame(&[]));
    // Byte by byte.
    let mut got = Vec::new();
    for byte in stream {
        d.push(&[byte]);
        while let Some(f) = d.next_frame().unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, vec![b"hello".to_vec(), big, vec![]]);
    assert_eq!(d.buffered(), 0);
    let mut d = FrameDecoder::new(10);
    d.push(&encode_frame(&[0; 11]));
    assert_eq!(
        d.next_frame(),
        Err(MvdsError::FrameTooLarge { size: 11, max: 10 })
    );
    let mut d = FrameDecoder::default();
    d.push(&[0xff; 11]);
    assert_eq!(d.next_frame(), Err(MvdsError::BadFrameLength));
}

#[test]
fn persist_records_round_trip() {
    let records = vec![
        PersistRecord::Epoch(42),
        PersistRecord::PeerAdded {
            group: GROUP,
            peer: peer(1),
        },
        PersistRecord::Message {
            message: sample_message(b"b", vec![[1; 32]], false),
            from: Some(peer(2)),
            delivered: false,
        },
        PersistRecord::Message {
            message: sample_message(b"", vec![], false),
            from: None,
            delivered: true,
        },
        PersistRecord::Delivered { id: [5; 32] },
        PersistRecord::State {
            peer: peer(3),
            id: [6; 32],
            state: SyncState {
                kind: RecordKind::Request,
                group: None,
                send_count: 3,
                send_epoch: 99,
            },
        },
        PersistRecord::StateRemoved {
            peer: peer(3),
            id: [6; 32],
        },
    ];
    for r in records {
        assert_eq!(PersistRecord::decode(&r.encode()).unwrap(), r);
    }
}

#[test]
fn retransmission_functions() {
    // status-go + v0.0.23: cumulative.
    assert_eq!(Retransmission::StatusGo.next_send_epoch(1, 5, 6), 6 + 5 + 2);
    assert_eq!(Retransmission::Linear.next_send_epoch(1, 5, 6), 7);
    assert_eq!(Retransmission::Linear.next_send_epoch(3, 5, 6), 11);
    let e = Retransmission::Exponential {
        base_epochs: 2,
        cap_epochs: 20,
    };
    assert_eq!(e.next_send_epoch(1, 10, 0), 12);
    assert_eq!(e.next_send_epoch(2, 10, 0), 14);
    assert_eq!(e.next_send_epoch(4, 10, 0), 26);
    assert_eq!(e.next_send_epoch(5, 10, 0), 30);
    assert_eq!(e.next_send_epoch(200, 10, 0), 30);
    // Never in the past.
    assert_eq!(
        Retransmission::Custom(|_, _, _| 0).next_send_epoch(1, 10, 0),
        11
    );
    assert_eq!(
        Retransmission::StatusGo.next_send_epoch(u64::MAX, u64::MAX, u64::MAX),
        u64::MAX
    );
}

proptest! {
    #[test]
    fn decode_arbitrary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload(&bytes, Numbering::Status2019);
        let _ = decode_payload(&bytes, Numbering::VacHead);
        let _ = PersistRecord::decode(&bytes);
        let mut d = FrameDecoder::new(256);
        d.push(&bytes);
        while let Ok(Some(_)) = d.next_frame() {}
        let mut m = Mvds::new(Config::default(), T0).unwrap();
        let _ = m.handle_payload(T0, peer(1), &bytes);
        while m.poll_action().is_some() {}
    }

    #[test]
    fn round_trip_and_truncations(
        acks in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
        offers in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
        requests in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
        msgs in proptest::collection::vec(
            (any::<[u8; 32]>(), any::<i64>(), proptest::collection::vec(any::<u8>(), 0..40),
             proptest::option::of((proptest::collection::vec(any::<[u8; 32]>(), 0..3), any::<bool>()))),
            0..3),
    ) {
        let payload = Payload {
            acks, offers, requests,
            messages: msgs.into_iter().map(|(g, t, b, meta)| Message {
                group_id: g, timestamp: t, body: b,
                metadata: meta.map(|(parents, ephemeral)| Metadata { parents, ephemeral }),
            }).collect(),
        };
        for n in [Numbering::Status2019, Numbering::VacHead] {
            let bytes = encode_payload(&payload, n);
            let back = decode_payload(&bytes, n).unwrap();
            // Status numbering drops empty metadata; compare modulo that.
            let norm = |p: &Payload| { let mut p = p.clone(); for m in &mut p.messages {
                if m.metadata.as_ref().is_some_and(Metadata::is_empty) { m.metadata = None; } } p };
            prop_assert_eq!(norm(&back), norm(&payload));
            for cut in 0..bytes.len() {
                let _ = decode_payload(&bytes[..cut], n);
            }
            let framed = encode_frame(&bytes);
            for cut in 0..framed.len() {
                let mut d = FrameDecoder::default();
                d.push(&framed[..cut]);
                prop_assert_eq!(d.next_frame(), Ok(None));
            }
        }
        let r = PersistRecord::Message { message: payload.messages.first().cloned().unwrap_or_default(),
            from: None, delivered: true };
        let enc = r.encode();
        for cut in 0..enc.len() { prop_assert!(PersistRecord::decode(&enc[..cut]).is_err()); }
    }
}

// ------------------------------------------------------------------------------------------------
// A small in-test network.

/// Delivery policy of a link phase.
#[derive(Clone, Copy, Debug)]
struct Faults {
    loss_pct: u32,
    dup_pct: u32,
    max_delay_ms: u64,
}

const RELIABLE: Faults = Faults {
    loss_pct: 0,
    dup_pct: 0,
    max_delay_ms: 50,
};

struct Net {
    now: Time,
    nodes: Vec<Mvds>,
    ids: Vec<PeerId>,
    /// (arrival time, seq) → (to, from, bytes).
    in_flight: BTreeMap<(Time, u64), (usize, usize, Vec<u8>)>,
    seq: u64,
    rng: crate::rng::Rng,
    faults: Faults,
    delivered: Vec<BTreeMap<MessageId, u32>>,
    records: Vec<Vec<PersistRecord>>,
    sends: u64,
    /// Directed links (from, to) that lose everything.
    blocked: std::collections::BTreeSet<(usize, usize)>,
}

impl Net {
    fn new(n: usize, config: &Config, seed: u64) -> Net {
        let ids: Vec<PeerId> = (0..n).map(|i| peer(i as u8 + 1)).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut m = Mvds::new(config.clone(), T0).unwrap();
            for (j, p) in ids.iter().enumerate() {
                if i != j {
                    m.add_peer(T0, GROUP, *p).unwrap();
                }
            }
            nodes.push(m);
        }
        let mut net = Net {
            now: T0,
            nodes,
            ids,
            in_flight: BTreeMap::new(),
            seq: 0,
            rng: rng_from_seed(seed_from_u64(seed)),
            faults: RELIABLE,
            delivered: vec![BTreeMap::new(); n],
            records: vec![Vec::new(); n],
            sends: 0,
            blocked: Default::default(),
        };
        for i in 0..n {
            net.drain(i);
        }
        net
    }

    fn pct(&mut self, p: u32) -> bool {
        self.rng.next_u32() % 100 < p
    }

    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].poll_action() {
            match a {
                Action::Persist(r) => self.records[i].push(r),
                Action::Deliver { id, .. } => *self.delivered[i].entry(id).or_default() += 1,
                Action::Send { peer, bytes } => {
                    self.sends += 1;
                    let to = self.ids.iter().position(|p| *p == peer).unwrap();
                    let f = self.faults;
                    if self.blocked.contains(&(i, to)) || self.pct(f.loss_pct) {
                        continue;
                    }
                    let copies = if self.pct(f.dup_pct) { 2 } else { 1 };
                    for _ in 0..copies {
                        let delay = 1 + self.rng.next_u64() % f.max_delay_ms.max(1);
                        self.seq += 1;
                        self.in_flight.insert(
                            (self.now.plus_millis(delay), self.seq),
                            (to, i, bytes.clone()),
                        );
                    }
                }
            }
        }
    }

    /// Crash and restart node `i` from its persisted records (pending acks, queued actions
    /// and ephemeral memory are lost, as in a real crash).
    fn restart(&mut self, i: usize) {
        let config = self.nodes[i].config().clone();
        let records = self.records[i].clone();
        self.nodes[i] = Mvds::restore(config, self.now, records).unwrap();
        self.drain(i);
    }

    fn send(&mut self, i: usize, body: Vec<u8>, opts: SendOptions) -> MessageId {
        let id = self.nodes[i].send(self.now, GROUP, body, opts).unwrap();
        self.drain(i);
        id
    }

    fn next_event(&self) -> Option<Time> {
        let t = self.nodes.iter().filter_map(Mvds::poll_timeout).min();
        crate::time::earliest(t, self.in_flight.keys().next().map(|k| k.0))
    }

    /// Runs events until `until` or quiescence.
    fn run_until(&mut self, until: Time) {
        while let Some(t) = self.next_event() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            while let Some(entry) = self.in_flight.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (to, from, bytes) = entry.remove();
                let from = self.ids[from];
                self.nodes[to]
                    .handle_payload(self.now, from, &bytes)
                    .unwrap();
                self.drain(to);
            }
            for i in 0..self.nodes.len() {
                self.nodes[i].handle_timeout(self.now);
                self.drain(i);
            }
        }
        self.now = self.now.max(until);
    }

    fn quiescent(&self) -> bool {
        self.in_flight.is_empty() && self.nodes.iter().all(|n| n.poll_timeout().is_none())
    }
}

fn collect(m: &mut Mvds) -> Vec<Action> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn sends(actions: &[Action]) -> Vec<Payload> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => {
                Some(decode_payload(bytes, Numbering::Status2019).unwrap())
            }
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Machine.

#[test]
fn batch_send_deliver_ack_then_silence() {
    let mut net = Net::new(2, &Config::default(), 1);
    let id = net.send(0, b"hello".to_vec(), SendOptions::default());
    assert!(net.nodes[0].state(&net.ids[1], &id).is_some());
    net.run_until(T0.plus_millis(10_000));
    assert_eq!(net.delivered[1].get(&id), Some(&1));
    assert!(
        net.delivered[0].is_empty(),
        "own messages are not delivered"
    );
    assert_eq!(net.nodes[0].state_len(), 0);
    assert!(net.quiescent());
    let before = net.sends;
    net.run_until(T0.plus_millis(600_000));
    assert_eq!(net.sends, before, "no retransmission after ack");
    // Batch mode: one MESSAGE, one ACK.
    assert_eq!(net.nodes[0].stats().messages_sent, 1);
    assert_eq!(net.nodes[1].stats().acks_sent, 1);
}

#[test]
fn first_send_waits_one_epoch_then_backs_off() {
    let mut a = Mvds::new(Config::default(), T0).unwrap();
    a.add_peer(T0, GROUP, peer(2)).unwrap();
    let id = a
        .send(T0, GROUP, b"x".to_vec(), SendOptions::default())
        .unwrap();
    let acts = collect(&mut a);
    // Persist the message, then the record, before anything is sent.
    assert!(matches!(
        acts[0],
        Action::Persist(PersistRecord::PeerAdded { .. })
    ));
    assert!(matches!(
        acts[1],
        Action::Persist(PersistRecord::Message { .. })
    ));
    assert!(matches!(
        acts[2],
        Action::Persist(PersistRecord::State { .. })
    ));
    assert_eq!(acts.len(), 3);
    // Record at epoch 1; tick at T0+300 uses epoch 0, T0+600 epoch 1.
    assert_eq!(a.poll_timeout(), Some(T0.plus_millis(600)));
    a.handle_timeout(T0.plus_millis(300));
    assert!(collect(&mut a).is_empty());
    a.handle_timeout(T0.plus_millis(600));
    let acts = collect(&mut a);
    let persists_before_send = acts
        .iter()
        .position(|x| matches!(x, Action::Send { .. }))
        .unwrap();
    assert!(acts[..persists_before_send]
        .iter()
        .all(|x| matches!(x, Action::Persist(_))));
    assert_eq!(sends(&acts).len(), 1);
    // StatusGo cumulative: count 1, epoch 1, previous 1 → 1 + 1 + 2 = 4.
    let s = a.state(&peer(2), &id).unwrap();
    assert_eq!((s.send_count, s.send_epoch), (1, 4));
    assert_eq!(a.epoch(), 2);
    assert_eq!(a.poll_timeout(), Some(T0.plus_millis(600 + 3 * 300)));
    // Idempotent and early calls do nothing.
    a.handle_timeout(T0.plus_millis(600));
    a.handle_timeout(T0.plus_millis(1000));
    assert!(collect(&mut a).is_empty());
    a.handle_timeout(T0.plus_millis(1500));
    let acts = collect(&mut a);
    assert_eq!(sends(&acts)[0].messages.len(), 1);
    assert_eq!(a.stats().retransmissions, 1);
    // Ack stops it.
    let ack = encode_payload(
        &Payload {
            acks: vec![id],
            ..Payload::default()
        },
        Numbering::Status2019,
    );
    a.handle_payload(T0.plus_millis(1600), peer(2), &ack)
        .unwrap();
    assert_eq!(a.state_len(), 0);
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn interactive_offer_request_message_ack() {
    let config = Config {
        mode: Mode::Interactive,
        ..Config::default()
    };
    let mut n = [
        Mvds::new(config.clone(), T0).unwrap(),
        Mvds::new(config, T0).unwrap(),
    ];
    n[0].add_peer(T0, GROUP, peer(2)).unwrap();
    n[1].add_peer(T0, GROUP, peer(1)).unwrap();
    collect(&mut n[0]);
    collect(&mut n[1]);
    let id = n[0]
        .send(T0, GROUP, b"q".to_vec(), SendOptions::default())
        .unwrap();
    collect(&mut n[0]);
    let mut now = T0;
    let mut kinds = Vec::new();
    for _ in 0..40 {
        now = now.plus_millis(300);
        for x in 0..2 {
            n[x].handle_timeout(now);
            for act in collect(&mut n[x]) {
                if let Action::Send { bytes, .. } = act {
                    let p = decode_payload(&bytes, Numbering::Status2019).unwrap();
                    kinds.push((
                        !p.offers.is_empty(),
                        !p.requests.is_empty(),
                        !p.messages.is_empty(),
                        !p.acks.is_empty(),
                    ));
                    n[1 - x]
                        .handle_payload(now, peer(x as u8 + 1), &bytes)
                        .unwrap();
                }
            }
        }
    }
    assert_eq!(
        kinds,
        vec![
            (true, false, false, false),
            (false, true, false, false),
            (false, false, true, false),
            (false, false, false, true)
        ]
    );
    assert!(n[1].is_delivered(&id));
    assert_eq!(n[0].state_len() + n[1].state_len(), 0);
}

#[test]
fn offer_of_known_message_is_acked() {
    let mut b = Mvds::new(Config::default(), T0).unwrap();
    b.add_peer(T0, GROUP, peer(1)).unwrap();
    let m = sample_message(b"m", vec![], false);
    let id = m.id();
    let msg = encode_payload(
        &Payload {
            messages: vec![m],
            ..Payload::default()
        },
        Numbering::Status2019,
    );
    b.handle_payload(T0, peer(1), &msg).unwrap();
    // Duplicate MESSAGE: acked again, not delivered again.
    b.handle_payload(T0, peer(1), &msg).unwrap();
    let offer = encode_payload(
        &Payload {
            offers: vec![id],
            ..Payload::default()
        },
        Numbering::Status2019,
    );
    b.handle_payload(T0, peer(1), &offer).unwrap();
    let acts = collect(&mut b);
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::Deliver { .. }))
            .count(),
        1
    );
    assert_eq!(b.stats().duplicates, 1);
    b.handle_timeout(T0.plus_millis(300));
    let p = sends(&collect(&mut b));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].acks, vec![id]);
    assert_eq!(b.state_len(), 0, "no REQUEST for a known offer");
}

#[test]
fn split_at_payload_limit() {
    let config = Config {
        max_payload_bytes: 300,
        ..Config::default()
    };
    let mut net = Net::new(2, &config, 2);
    let mut ids = Vec::new();
    for i in 0..10u8 {
        ids.push(net.send(0, vec![i; 100], SendOptions::default()));
    }
    assert!(matches!(
        net.nodes[0].send(net.now, GROUP, vec![0; 300], SendOptions::default()),
        Err(MvdsError::BodyTooLarge { max: 300, .. })
    ));
    net.nodes[0].handle_timeout(T0.plus_millis(600));
    let acts = collect(&mut net.nodes[0]);
    let mut count = 0;
    for a in &acts {
        if let Action::Send { bytes, .. } = a {
            assert!(bytes.len() <= 300);
            count += 1;
        }
    }
    assert!(
        count >= 4,
        "10 × ~140 bytes need several payloads, got {count}"
    );
    // And everything still arrives.
    let mut net = Net::new(2, &config, 2);
    for i in 0..10u8 {
        net.send(0, vec![i; 100], SendOptions::default());
    }
    net.run_until(T0.plus_millis(30_000));
    assert_eq!(net.delivered[1].len(), 10);
    assert!(net.quiescent());
}

#[test]
fn limits_are_typed_errors() {
    let config = Config {
        max_sync_states: 2,
        max_stored_messages: 3,
        ..Config::default()
    };
    let mut a = Mvds::new(config, T0).unwrap();
    assert_eq!(
        a.send(T0, GROUP, b"x".to_vec(), SendOptions::default()),
        Err(MvdsError::UnknownGroup)
    );
    a.add_peer(T0, GROUP, peer(2)).unwrap();
    a.add_peer(T0, GROUP, peer(3)).unwrap();
    a.send(T0, GROUP, b"1".to_vec(), SendOptions::default())
        .unwrap();
    assert_eq!(
        a.send(T0, GROUP, b"2".to_vec(), SendOptions::default()),
        Err(MvdsError::StateFull { max: 2 })
    );
    assert_eq!(a.store_len(), 1, "nothing stored on error");
    assert!(matches!(
        a.send(T0, GROUP, b"1".to_vec(), SendOptions::default()),
        Err(MvdsError::DuplicateMessage(_))
    ));
    assert_eq!(
        a.send(
            T0,
            GROUP,
            b"e".to_vec(),
            SendOptions {
                ephemeral: true,
                parents: Parents::Auto,
                ..SendOptions::default()
            }
        ),
        Err(MvdsError::EphemeralWithParents)
    );
    assert_eq!(
        a.send(
            T0,
            GROUP,
            b"p".to_vec(),
            SendOptions {
                parents: Parents::Explicit(vec![[0; 32]; 33]),
                ..SendOptions::default()
            }
        ),
        Err(MvdsError::TooManyParents { count: 33, max: 32 })
    );
    let big = vec![0u8; DEFAULT_MAX_INCOMING_PAYLOAD_BYTES + 1];
    assert!(matches!(
        a.handle_payload(T0, peer(2), &big),
        Err(MvdsError::PayloadTooLarge { .. })
    ));
    assert!(Mvds::new(
        Config {
            epoch_interval_ms: 0,
            ..Config::default()
        },
        T0
    )
    .is_err());
}

fn payload_of(messages: Vec<Message>) -> Vec<u8> {
    encode_payload(
        &Payload {
            messages,
            ..Payload::default()
        },
        Numbering::Status2019,
    )
}

fn delivered_ids(actions: &[Action]) -> Vec<MessageId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn consistent_mode_waits_for_parents() {
    let config = Config {
        resolution: Resolution::Consistent,
        ..Config::default()
    };
    let mut b = Mvds::new(config, T0).unwrap();
    b.add_peer(T0, GROUP, peer(1)).unwrap();
    collect(&mut b);
    let root = sample_message(b"root", vec![], false);
    let mid = sample_message(b"mid", vec![root.id()], false);
    let leaf = sample_message(b"leaf", vec![mid.id()], false);
    b.handle_payload(T0, peer(1), &payload_of(vec![leaf.clone()]))
        .unwrap();
    assert!(delivered_ids(&collect(&mut b)).is_empty());
    assert_eq!(b.pending_len(), 1);
    let req = b.state(&peer(1), &mid.id()).unwrap();
    assert_eq!(req.kind, RecordKind::Request);
    b.handle_payload(T0, peer(1), &payload_of(vec![mid.clone()]))
        .unwrap();
    assert!(delivered_ids(&collect(&mut b)).is_empty());
    assert_eq!(b.state(&peer(1), &mid.id()), None, "request answered");
    b.handle_payload(T0, peer(1), &payload_of(vec![root.clone()]))
        .unwrap();
    // Multi-level: root, then mid, then leaf.
    assert_eq!(
        delivered_ids(&collect(&mut b)),
        vec![root.id(), mid.id(), leaf.id()]
    );
    assert_eq!(b.pending_len(), 0);
    assert_eq!(b.heads(&GROUP), vec![leaf.id()]);
}

#[test]
fn eventual_mode_delivers_and_requests_parent() {
    let mut b = Mvds::new(Config::default(), T0).unwrap();
    b.add_peer(T0, GROUP, peer(1)).unwrap();
    collect(&mut b);
    let root = sample_message(b"root", vec![], false);
    let leaf = sample_message(b"leaf", vec![root.id()], false);
    b.handle_payload(T0, peer(1), &payload_of(vec![leaf.clone()]))
        .unwrap();
    assert_eq!(delivered_ids(&collect(&mut b)), vec![leaf.id()]);
    assert_eq!(
        b.state(&peer(1), &root.id()).map(|s| s.kind),
        Some(RecordKind::Request)
    );
    b.handle_timeout(T0.plus_millis(600));
    let p = sends(&collect(&mut b));
    assert_eq!(p[0].requests, vec![root.id()]);
    assert_eq!(p[0].acks, vec![leaf.id()]);
}

#[test]
fn pending_buffer_is_bounded() {
    let config = Config {
        resolution: Resolution::Consistent,
        max_pending_messages: 1,
        ..Config::default()
    };
    let mut b = Mvds::new(config, T0).unwrap();
    let a1 = sample_message(b"a1", vec![[1; 32]], false);
    let a2 = sample_message(b"a2", vec![[2; 32]], false);
    b.handle_payload(T0, peer(1), &payload_of(vec![a1, a2.clone()]))
        .unwrap();
    assert_eq!(b.pending_len(), 1);
    assert_eq!(b.stats().dropped_pending_full, 1);
    assert!(
        !b.has_message(&a2.id()),
        "dropped, not acked: the sender retries"
    );
}

#[test]
fn auto_parents_are_heads() {
    let mut net = Net::new(2, &Config::default(), 3);
    let auto = SendOptions {
        parents: Parents::Auto,
        ..SendOptions::default()
    };
    let a = net.send(0, b"a".to_vec(), auto.clone());
    let b = net.send(0, b"b".to_vec(), auto.clone());
    assert_eq!(net.nodes[0].heads(&GROUP), vec![b]);
    net.run_until(T0.plus_millis(5_000));
    let c = net.send(1, b"c".to_vec(), auto);
    assert_eq!(net.nodes[1].heads(&GROUP), vec![c]);
    let rec = net.records[1]
        .iter()
        .find_map(|r| match r {
            PersistRecord::Message { message, .. } if message.id() == c => Some(message.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(rec.parents(), &[b]);
    let _ = a;
}

#[test]
fn ephemeral_sent_once_delivered_once_never_acked() {
    let mut net = Net::new(2, &Config::default(), 4);
    net.faults = Faults {
        loss_pct: 0,
        dup_pct: 100,
        max_delay_ms: 10,
    };
    let id = net.send(
        0,
        b"typing".to_vec(),
        SendOptions {
            ephemeral: true,
            ..SendOptions::default()
        },
    );
    assert_eq!(net.nodes[0].state_len(), 0);
    assert!(!net.nodes[0].has_message(&id));
    net.run_until(T0.plus_millis(60_000));
    assert_eq!(net.delivered[1].get(&id), Some(&1));
    assert_eq!(net.nodes[0].stats().messages_sent, 1);
    assert_eq!(net.nodes[1].stats().acks_sent, 0);
    assert!(net.quiescent());
}

#[test]
fn restore_resumes_retransmission() {
    // A appends, persists, and "crashes" before anything reaches B.
    let mut a = Mvds::new(Config::default(), T0).unwrap();
    a.add_peer(T0, GROUP, peer(2)).unwrap();
    let id = a
        .send(T0, GROUP, b"durable".to_vec(), SendOptions::default())
        .unwrap();
    let mut records: Vec<PersistRecord> = Vec::new();
    let mut now = T0;
    for _ in 0..5 {
        now = now.plus_millis(300);
        a.handle_timeout(now);
    }
    for act in collect(&mut a) {
        if let Action::Persist(r) = act {
            records.push(r);
        }
    }
    let sent_before = a.state(&peer(2), &id).unwrap();
    assert!(sent_before.send_count >= 1);
    drop(a);
    // Through the byte encoding, as a driver would store them.
    let bytes: Vec<Vec<u8>> = records.iter().map(PersistRecord::encode).collect();
    let records: Vec<PersistRecord> = bytes
        .iter()
        .map(|b| PersistRecord::decode(b).unwrap())
        .collect();
    let later = now.plus_millis(3_600_000);
    let mut a = Mvds::restore(Config::default(), later, records.clone()).unwrap();
    assert_eq!(a.state(&peer(2), &id), Some(sent_before));
    assert!(a.epoch() >= 2);
    let mut b = Mvds::new(Config::default(), later).unwrap();
    b.add_peer(later, GROUP, peer(1)).unwrap();
    collect(&mut b);
    // Run until A retransmits and B acks.
    let mut t = later;
    let mut got = 0;
    for _ in 0..200 {
        let Some(next) = a.poll_timeout() else { break };
        t = t.max(next);
        a.handle_timeout(t);
        for act in collect(&mut a) {
            if let Action::Send { bytes, .. } = act {
                b.handle_payload(t, peer(1), &bytes).unwrap();
            }
        }
        b.handle_timeout(t.plus_millis(300));
        for act in collect(&mut b) {
            match act {
                Action::Deliver { id: d, .. } => {
                    assert_eq!(d, id);
                    got += 1;
                }
                Action::Send { bytes, .. } => a.handle_payload(t, peer(2), &bytes).unwrap(),
                _ => {}
            }
        }
    }
    assert_eq!(got, 1);
    assert_eq!(a.state_len(), 0);
    assert_eq!(a.poll_timeout(), None);

    // B restored from its records neither re-delivers nor forgets: a retransmitted duplicate
    // is acked, not delivered.
    let mut b_records = Vec::new();
    let mut b2 = Mvds::new(Config::default(), t).unwrap();
    b2.add_peer(t, GROUP, peer(1)).unwrap();
    let msg = Message {
        group_id: GROUP,
        timestamp: i64::try_from(T0.as_secs()).unwrap(),
        body: b"durable".to_vec(),
        metadata: None,
    };
    assert_eq!(msg.id(), id);
    b2.handle_payload(t, peer(1), &payload_of(vec![msg.clone()]))
        .unwrap();
    for act in collect(&mut b2) {
        if let Action::Persist(r) = act {
            b_records.push(r);
        }
    }
    let mut b3 = Mvds::restore(Config::default(), t, b_records).unwrap();
    assert!(
        collect(&mut b3).is_empty(),
        "nothing re-delivered on restore"
    );
    b3.handle_payload(t, peer(1), &payload_of(vec![msg]))
        .unwrap();
    assert!(delivered_ids(&collect(&mut b3)).is_empty());
    b3.handle_timeout(t.plus_millis(300));
    assert_eq!(sends(&collect(&mut b3))[0].acks, vec![id]);
}

#[test]
fn restore_delivers_buffered_messages_whose_parents_arrived() {
    // Consistent node crashed after persisting the parent's delivery but before the child's.
    let config = Config {
        resolution: Resolution::Consistent,
        ..Config::default()
    };
    let root = sample_message(b"r", vec![], false);
    let child = sample_message(b"c", vec![root.id()], false);
    let records = vec![
        PersistRecord::Message {
            message: child.clone(),
            from: Some(peer(1)),
            delivered: false,
        },
        PersistRecord::Message {
            message: root.clone(),
            from: Some(peer(1)),
            delivered: true,
        },
    ];
    let mut m = Mvds::restore(config, T0, records).unwrap();
    let acts = collect(&mut m);
    assert!(matches!(
        acts[0],
        Action::Persist(PersistRecord::Delivered { .. })
    ));
    assert_eq!(delivered_ids(&acts), vec![child.id()]);
}

#[test]
fn head_numbering_interoperates() {
    let config = Config {
        numbering: Numbering::VacHead,
        retransmission: Retransmission::Linear,
        ..Config::default()
    };
    let mut net = Net::new(3, &config, 5);
    let id = net.send(0, b"x".to_vec(), SendOptions::default());
    net.run_until(T0.plus_millis(20_000));
    assert_eq!(net.delivered[1].get(&id), Some(&1));
    assert_eq!(net.delivered[2].get(&id), Some(&1));
    assert!(net.quiescent());
}

// ------------------------------------------------------------------------------------------------
// The property: loss, duplication, reordering, then heal.

fn soak_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn retransmission_strategy() -> impl Strategy<Value = Retransmission> {
    prop_oneof![
        Just(Retransmission::StatusGo),
        Just(Retransmission::Linear),
        (1u64..4, 4u64..64).prop_map(|(b, c)| Retransmission::Exponential {
            base_epochs: b,
            cap_epochs: c
        }),
    ]
}

proptest! {
    // 48 cases by default; `PROPTEST_CASES=N` runs more (a soak).
    #![proptest_config(ProptestConfig { cases: soak_cases(48), ..ProptestConfig::default() })]

    #[test]
    fn exactly_once_under_faults(
        seed in any::<u64>(),
        nodes in 2usize..5,
        per_node in 1usize..4,
        loss_pct in 0u32..90,
        dup_pct in 0u32..40,
        max_delay_ms in 1u64..5_000,
        lossy_ms in 0u64..60_000,
        interactive in any::<bool>(),
        consistent in any::<bool>(),
        auto_parents in any::<bool>(),
        relay in any::<bool>(),
        head in any::<bool>(),
        retransmission in retransmission_strategy(),
        restarts in proptest::collection::vec(0usize..4, 0..5),
    ) {
        let config = Config {
            mode: if interactive { Mode::Interactive } else { Mode::Batch },
            resolution: if consistent { Resolution::Consistent } else { Resolution::Eventual },
            numbering: if head { Numbering::VacHead } else { Numbering::Status2019 },
            relay,
            retransmission,
            ..Config::default()
        };
        let mut net = Net::new(nodes, &config, seed);
        net.faults = Faults { loss_pct, dup_pct, max_delay_ms };
        let opts = SendOptions {
            parents: if auto_parents { Parents::Auto } else { Parents::None },
            ..SendOptions::default()
        };
        let mut all: Vec<(usize, MessageId)> = Vec::new();
        // Sends spread over the lossy phase (and one second apart so ids differ by timestamp
        // too).
        for round in 0..per_node {
            for i in 0..nodes {
                let body = format!("node{i}-msg{round}").into_bytes();
                let id = net.send(i, body, opts.clone());
                all.push((i, id));
            }
            let step = net.now.plus_millis(lossy_ms / per_node as u64 + 1000);
            net.run_until(step);
            if let Some(i) = restarts.get(round) {
                net.restart(i % nodes);
            }
        }
        for i in restarts.iter().skip(per_node) {
            net.restart(i % nodes);
        }
        // Heal: every pair exchanges payloads reliably from now on.
        net.faults = RELIABLE;
        let cap = net.now.plus_millis(24 * 3_600_000);
        net.run_until(cap);
        prop_assert!(net.quiescent(), "not quiescent after the heal phase");
        for (author, id) in &all {
            for (j, seen) in net.delivered.iter().enumerate() {
                let n = seen.get(id).copied().unwrap_or(0);
                if j == *author {
                    prop_assert_eq!(n, 0);
                } else {
                    prop_assert_eq!(n, 1, "node {} got {} copies of a message of {}", j, n, author);
                }
            }
        }
        for (j, seen) in net.delivered.iter().enumerate() {
            prop_assert_eq!(seen.len(), all.iter().filter(|(a, _)| *a != j).count());
        }
        // Retransmission stopped: no record left, no timer, and nothing more is sent.
        for n in &net.nodes {
            prop_assert_eq!(n.state_len(), 0);
            prop_assert_eq!(n.pending_len(), 0);
        }
        let before = net.sends;
        net.run_until(cap.plus_millis(3_600_000));
        prop_assert_eq!(net.sends, before);
    }
}

#[test]
fn heavy_loss_is_overcome_by_retransmission() {
    let mut net = Net::new(3, &Config::default(), 9);
    net.faults = Faults {
        loss_pct: 70,
        dup_pct: 20,
        max_delay_ms: 2_000,
    };
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(net.send(i, format!("m{i}").into_bytes(), SendOptions::default()));
    }
    net.run_until(T0.plus_millis(120_000));
    net.faults = RELIABLE;
    net.run_until(T0.plus_millis(24 * 3_600_000));
    let retrans: u64 = net.nodes.iter().map(|n| n.stats().retransmissions).sum();
    assert!(retrans > 0, "70% loss must force retransmissions");
    for (i, d) in net.delivered.iter().enumerate() {
        assert_eq!(d.len(), 2, "node {i}");
        assert!(d.values().all(|c| *c == 1));
    }
    assert!(net.quiescent());
    eprintln!(
        "sends={} retransmissions={retrans} sim_end={}",
        net.sends,
        net.now.millis_since(T0)
    );
}

#[test]
fn status_one_to_one_group_id_vector() {
    let v: serde_json::Value = serde_json::from_str(DERIVED).unwrap();
    let v = &v["status_one_to_one_mvds_group_id"];
    let keys: Vec<secp256k1::PublicKey> = v["private_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let sk = secp256k1::SecretKey::from_slice(&hex::decode(k.as_str().unwrap()).unwrap())
                .unwrap();
            secp256k1::PublicKey::from_secret_key(crate::ecies::secp(), &sk)
        })
        .collect();
    let expected = v["group_id"].as_str().unwrap();
    assert_eq!(
        hex::encode(one_to_one_group_id(&keys[0], &keys[1])),
        expected
    );
    assert_eq!(
        hex::encode(one_to_one_group_id(&keys[1], &keys[0])),
        expected
    );
    let p = peer_id_from_public_key(&keys[0]);
    assert_eq!(p.0[0], 4);
    assert_eq!(&p.0[..], &keys[0].serialize_uncompressed()[..]);
}

#[test]
fn relay_reaches_members_the_author_cannot() {
    let mut net = Net::new(3, &Config::default(), 11);
    net.blocked.insert((0, 2));
    net.blocked.insert((2, 0));
    let id = net.send(0, b"via 1".to_vec(), SendOptions::default());
    net.run_until(T0.plus_millis(5_000));
    assert_eq!(net.delivered[1].get(&id), Some(&1));
    assert_eq!(
        net.delivered[2].get(&id),
        Some(&1),
        "node 1 re-shares with node 2"
    );
    // Node 0 keeps retrying node 2 (it never hears an ack from it): that is MVDS.
    assert!(net.nodes[0].state(&net.ids[2], &id).is_some());
    assert_eq!(net.nodes[1].state_len(), 0);
    net.blocked.clear();
    net.run_until(T0.plus_millis(3_600_000));
    assert!(net.quiescent());
    assert_eq!(net.delivered[2].get(&id), Some(&1));
}

#[test]
fn sync_over_a_framed_byte_stream() {
    // Two machines whose payloads travel as varint-delimited frames over one byte stream per
    // direction, cut into arbitrary chunks (what a TCP connection to a vacp2p/mvds adapter does).
    let config = Config {
        numbering: Numbering::VacHead,
        ..Config::default()
    };
    let mut n = [
        Mvds::new(config.clone(), T0).unwrap(),
        Mvds::new(config, T0).unwrap(),
    ];
    n[0].add_peer(T0, GROUP, peer(2)).unwrap();
    n[1].add_peer(T0, GROUP, peer(1)).unwrap();
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(
            n[0].send(T0, GROUP, vec![i; 1000], SendOptions::default())
                .unwrap(),
        );
    }
    let back = n[1]
        .send(T0, GROUP, b"reply".to_vec(), SendOptions::default())
        .unwrap();
    let mut streams: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut decoders = [FrameDecoder::default(), FrameDecoder::default()];
    let mut got: [Vec<MessageId>; 2] = [Vec::new(), Vec::new()];
    let mut rng = rng_from_seed(seed_from_u64(3));
    let mut now = T0;
    for _ in 0..100 {
        now = now.plus_millis(300);
        for x in 0..2 {
            n[x].handle_timeout(now);
            for a in collect(&mut n[x]) {
                match a {
                    Action::Send { bytes, .. } => streams[x].extend(encode_frame(&bytes)),
                    Action::Deliver { id, .. } => got[x].push(id),
                    Action::Persist(_) => {}
                }
            }
            // Deliver a random prefix of the stream to the other side.
            let cut = (rng.next_u32() as usize) % (streams[x].len() + 1);
            let chunk: Vec<u8> = streams[x].drain(..cut).collect();
            decoders[1 - x].push(&chunk);
            while let Some(frame) = decoders[1 - x].next_frame().unwrap() {
                n[1 - x]
                    .handle_payload(now, peer(x as u8 + 1), &frame)
                    .unwrap();
            }
            for a in collect(&mut n[1 - x]) {
                match a {
                    // Payload handling first catches up on a due tick, which may send.
                    Action::Send { bytes, .. } => streams[1 - x].extend(encode_frame(&bytes)),
                    Action::Deliver { id, .. } => got[1 - x].push(id),
                    Action::Persist(_) => {}
                }
            }
        }
    }
    ids.sort();
    got[1].sort();
    assert_eq!(got[1], ids);
    assert_eq!(got[0], vec![back]);
}
