//! Start-up (record replay) time against history length, before and after compaction (issue
//! 16 item 10): `cargo bench -p hush-drivers --bench startup`.
//!
//! A store holds `N` messages' worth of conversation records: per message one accepted
//! message with its outgoing/posted pair, three MVDS sync-state updates then their removal
//! (send, retransmit twice, ack), an epoch tick, the contact again and the contact-code time —
//! the churn a `/dm --datasync` exchange writes. (No ratchet-session records: building valid
//! ones needs a real X3DH; they are upserts too, so they fold like the sync states.)
//! Measured, per N: `full_log` = open the store, read and decode every record, `Node::restore`;
//! `compacted` = the same on the store after `NodeStore::compact` (snapshot + empty tail);
//! `raw_scan` = the raw primitive, SQLite reading the full log's blobs without decoding them.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hush_core::chat::direct::{Record, StoredMessage};
use hush_core::mvds::{PeerId, PersistRecord, RecordKind, SyncState};
use hush_core::node::{ChatMessage, Node, NodeConfig, Persist};
use hush_core::rng::seed_from_u64;
use hush_core::Time;
use hush_drivers::store::NodeStore;
use secp256k1::SecretKey;

/// Messages of history per measured store.
const HISTORY_MESSAGES: [u32; 3] = [100, 300, 1_000];

fn records_for(messages: u32) -> Vec<Record> {
    let contact = hush_core::ecies::public_key(&SecretKey::from_byte_array(&[7u8; 32]).unwrap());
    let peer = PeerId([4; 65]);
    let mut out = Vec::new();
    for i in 0..messages {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        let message = ChatMessage {
            chat: "0x04aa".into(),
            from: contact.serialize_uncompressed(),
            text: format!("message {i}"),
            clock: u64::from(i) * 100,
            timestamp_ms: u64::from(i),
            message_id: id,
        };
        out.push(Record::Batch(vec![
            Record::Outgoing {
                id,
                to: vec![contact],
                plaintext: vec![0; 64],
            },
            Record::Message(StoredMessage {
                group: false,
                message,
            }),
        ]));
        out.push(Record::Posted { id });
        for send_count in 1..=3 {
            out.push(Record::Mvds(PersistRecord::State {
                peer,
                id,
                state: SyncState {
                    kind: RecordKind::Message,
                    group: Some([1; 32]),
                    send_count,
                    send_epoch: u64::from(i) + send_count,
                },
            }));
        }
        out.push(Record::Mvds(PersistRecord::StateRemoved { peer, id }));
        out.push(Record::Mvds(PersistRecord::Epoch(u64::from(i))));
        out.push(Record::Contact(contact));
        out.push(Record::ContactCodePublished {
            at_ms: u64::from(i),
        });
    }
    out
}

fn build_store(dir: &Path, messages: u32, compacted: bool) -> PathBuf {
    let path = dir.join(format!(
        "n{messages}-{}.sqlite",
        if compacted { "compacted" } else { "full" }
    ));
    let mut store = NodeStore::open(&path).unwrap();
    let records = records_for(messages);
    let persists: Vec<Persist> = records.into_iter().map(Persist::Conversation).collect();
    for chunk in persists.chunks(512) {
        let refs: Vec<&Persist> = chunk.iter().collect();
        store.commit_batch(&refs, &[], None, &[]).unwrap();
    }
    if compacted {
        store.compact().unwrap();
    }
    path
}

fn start(path: &Path) -> Node {
    let store = NodeStore::open(path).unwrap();
    let records = store.records().unwrap();
    Node::restore(
        NodeConfig::default(),
        [1; 32],
        seed_from_u64(1),
        Time(1_700_000_000_000),
        records,
    )
    .unwrap()
}

fn raw_scan(path: &Path) -> usize {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, record FROM records ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .unwrap();
    rows.map(|r| r.unwrap().1.len()).sum()
}

fn startup(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("hush-bench-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("startup");
    group.sample_size(10);
    for n in HISTORY_MESSAGES {
        let full = build_store(&dir, n, false);
        let compacted = build_store(&dir, n, true);
        group.bench_with_input(BenchmarkId::new("raw_scan", n), &full, |b, p| {
            b.iter(|| raw_scan(p))
        });
        group.bench_with_input(BenchmarkId::new("full_log", n), &full, |b, p| {
            b.iter(|| start(p))
        });
        group.bench_with_input(BenchmarkId::new("compacted", n), &compacted, |b, p| {
            b.iter(|| start(p))
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, startup);
criterion_main!(benches);
