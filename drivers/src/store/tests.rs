use super::*;
use crate::test_util::temp_dir;
use hush_core::chat::direct::{Record, StoredMessage};
use hush_core::ecies::public_key;
use secp256k1::SecretKey;

fn msg(chat: &str, text: &str, clock: u64, id: u8) -> ChatMessage {
    let mut from = [4u8; 65];
    from[1] = id;
    ChatMessage {
        chat: chat.into(),
        from,
        text: text.into(),
        clock,
        timestamp_ms: clock / 100,
        message_id: [id; 32],
    }
}

fn stored(group: bool, m: ChatMessage) -> Record {
    Record::Message(StoredMessage { group, message: m })
}

#[test]
fn records_come_back_in_commit_order_and_messages_become_history() {
    let dir = temp_dir("store-order");
    let path = dir.join(STORE_FILE);
    let contact = public_key(&SecretKey::from_byte_array(&[7u8; 32]).unwrap());
    let written = vec![
        Record::Contact(contact),
        Record::Batch(vec![
            stored(false, msg("0x04aa", "second by clock", 20, 2)),
            Record::Posted { id: [9; 32] },
        ]),
        stored(false, msg("0x04aa", "first by clock", 10, 1)),
        stored(true, msg("group-1", "in group", 15, 3)),
    ];
    {
        let mut store = NodeStore::open(&path).unwrap();
        for r in &written {
            store.commit(&Persist::Conversation(r.clone())).unwrap();
        }
        store
            .commit(&Persist::ChatMessage(msg("status", "public", 5, 4)))
            .unwrap();
    }
    // Reopened: everything is there.
    let store = NodeStore::open(&path).unwrap();
    assert_eq!(store.records().unwrap(), written);
    let texts: Vec<String> = store
        .history("0x04aa")
        .unwrap()
        .into_iter()
        .map(|h| {
            assert_eq!(h.kind, ChatKind::Dm);
            h.message.text
        })
        .collect();
    assert_eq!(texts, vec!["first by clock", "second by clock"]);
    assert_eq!(store.history("group-1").unwrap()[0].kind, ChatKind::Group);
    assert_eq!(store.public_messages().unwrap().len(), 1);
    assert_eq!(store.history("status").unwrap()[0].kind, ChatKind::Public);
    // The 1:1 chat is known without anyone registering it.
    let chats = store.chats().unwrap();
    assert!(chats
        .iter()
        .any(|c| c.id == "0x04aa" && c.kind == ChatKind::Dm));
}

#[test]
fn a_message_is_stored_once_per_id() {
    let dir = temp_dir("store-dedup");
    let mut store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let m = msg("c", "once", 1, 1);
    store.commit(&Persist::ChatMessage(m.clone())).unwrap();
    store.commit(&Persist::ChatMessage(m)).unwrap();
    assert_eq!(store.history("c").unwrap().len(), 1);
}

#[test]
fn chats_groups_and_meta() {
    let dir = temp_dir("store-chats");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    store
        .upsert_chat("status", ChatKind::Public, "status")
        .unwrap();
    store.upsert_chat("g1", ChatKind::Group, "friends").unwrap();
    store.upsert_chat("g1", ChatKind::Group, "renamed").unwrap();
    store.upsert_chat("g2", ChatKind::Group, "renamed").unwrap();
    assert_eq!(store.find_groups("renamed").unwrap().len(), 2);
    assert_eq!(store.find_groups("g1").unwrap()[0].name, "renamed");
    assert!(store.find_groups("friends").unwrap().is_empty());
    assert_eq!(store.chat("g1").unwrap().unwrap().name, "renamed");
    assert_eq!(store.chat("nope").unwrap(), None);
    // A group we left is no longer found by name, but its row (name for history) stays.
    store.leave_chat("g2").unwrap();
    assert_eq!(store.find_groups("renamed").unwrap().len(), 1);
    assert_eq!(store.chat("g2").unwrap().unwrap().kind, ChatKind::Group);
    store.leave_chat("status").unwrap();
    assert!(!store.chats().unwrap().iter().any(|c| c.id == "status"));
    assert_eq!(store.meta("installation_id").unwrap(), None);
    store.set_meta("installation_id", "abc").unwrap();
    store.set_meta("installation_id", "abc").unwrap();
    assert_eq!(
        store.meta("installation_id").unwrap().as_deref(),
        Some("abc")
    );
    assert_eq!(store.sealed_identity().unwrap(), None);
    store.set_sealed_identity("{}").unwrap();
    assert_eq!(store.sealed_identity().unwrap().as_deref(), Some("{}"));
}

#[test]
fn envelopes_are_refused_and_a_newer_schema_is_an_error() {
    let dir = temp_dir("store-schema");
    let path = dir.join(STORE_FILE);
    let mut store = NodeStore::open(&path).unwrap();
    let err = store
        .commit(&Persist::Envelope {
            hash: [0; 32],
            sent_secs: 0,
            topic: [0; 4],
            raw: vec![],
        })
        .unwrap_err();
    assert!(err.to_string().contains("envelope"), "{err}");
    store.set_meta("schema", "999").unwrap();
    drop(store);
    let err = NodeStore::open(&path).err().expect("newer schema refused");
    assert!(err.to_string().contains("schema version 999"), "{err}");
}

#[test]
fn a_corrupt_record_is_a_clear_error() {
    let dir = temp_dir("store-corrupt");
    let path = dir.join(STORE_FILE);
    let store = NodeStore::open(&path).unwrap();
    store
        .conn
        .execute("INSERT INTO records (record) VALUES (x'c3ffffff')", [])
        .unwrap();
    let err = store.records().unwrap_err();
    assert!(
        format!("{err:#}").contains("record 1 is corrupt"),
        "{err:#}"
    );
}

#[test]
fn own_envelopes_are_kept_until_they_expire() {
    let dir = temp_dir("store-own");
    let mut store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    for (h, exp) in [(1u8, 100u32), (2, 200), (2, 200)] {
        store
            .commit(&Persist::OwnEnvelope {
                hash: [h; 32],
                expiry_secs: exp,
                raw: vec![h; 3],
            })
            .unwrap();
    }
    assert_eq!(
        store.own_envelopes(50).unwrap(),
        vec![vec![1; 3], vec![2; 3]]
    );
    // Pruned (the driver does it within a commit, at most every 10 s): gone for good.
    store.prune_own_envelopes(150).unwrap();
    assert_eq!(store.own_envelopes(0).unwrap(), vec![vec![2; 3]]);
    assert_eq!(store.own_envelopes(250).unwrap(), Vec::<Vec<u8>>::new());
}

/// Group commit (issue 14 §2): one transaction for a drain's records and chat changes, in
/// order, all or nothing, counted once.
#[test]
fn a_batch_is_one_transaction_all_or_nothing() {
    let dir = temp_dir("store-batch");
    let path = dir.join(STORE_FILE);
    let mut store = NodeStore::open(&path).unwrap();
    assert_eq!(store.commits(), 0);
    let contact = public_key(&SecretKey::from_byte_array(&[7u8; 32]).unwrap());
    let public = Persist::ChatMessage(msg("status", "public", 5, 4));
    let own = Persist::OwnEnvelope {
        hash: [9; 32],
        expiry_secs: 100,
        raw: vec![9; 3],
    };
    let conv = Persist::Conversation(Record::Contact(contact));
    let dm = Persist::Conversation(stored(false, msg("0x04aa", "dm", 7, 5)));
    let changes = vec![
        ChatChange::Upsert {
            id: "status".into(),
            kind: ChatKind::Public,
            name: "status".into(),
        },
        ChatChange::Upsert {
            id: "g1".into(),
            kind: ChatKind::Group,
            name: "friends".into(),
        },
        ChatChange::Leave { id: "g1".into() },
    ];
    store
        .commit_batch(&[&public, &own, &conv, &dm], &changes, None, &[])
        .unwrap();
    assert_eq!(store.commits(), 1);
    // Nothing to write: no transaction.
    store.commit_batch(&[], &[], None, &[]).unwrap();
    assert_eq!(store.commits(), 1);
    // A record this store refuses rolls the whole batch back.
    let envelope = Persist::Envelope {
        hash: [0; 32],
        sent_secs: 0,
        topic: [0; 4],
        raw: vec![],
    };
    let later = Persist::ChatMessage(msg("status", "rolled back", 6, 6));
    assert!(store
        .commit_batch(&[&later, &envelope], &[], None, &[])
        .is_err());
    assert_eq!(store.commits(), 1);
    drop(store);

    let mut store = NodeStore::open(&path).unwrap();
    let texts: Vec<String> = store
        .history("status")
        .unwrap()
        .into_iter()
        .map(|h| h.message.text)
        .collect();
    assert_eq!(texts, vec!["public"]);
    assert_eq!(store.history("0x04aa").unwrap().len(), 1);
    let conv_records = vec![
        Record::Contact(contact),
        stored(false, msg("0x04aa", "dm", 7, 5)),
    ];
    assert_eq!(store.records().unwrap(), conv_records);
    let chats: Vec<(String, ChatKind)> = store
        .chats()
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.kind))
        .collect();
    assert_eq!(
        chats,
        vec![
            ("0x04aa".to_string(), ChatKind::Dm),
            ("status".to_string(), ChatKind::Public)
        ]
    );
    // Housekeeping rides on a commit: the expired own envelope goes with the next batch.
    assert_eq!(store.own_envelopes(50).unwrap(), vec![vec![9; 3]]);
    let next = Persist::ChatMessage(msg("status", "next", 8, 8));
    store.commit_batch(&[&next], &[], Some(150), &[]).unwrap();
    assert_eq!(store.own_envelopes(0).unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn the_delivery_cursor_moves_with_the_next_commit_after_the_lines_were_shown() {
    let dir = temp_dir("store-deliveries");
    let path = dir.join(STORE_FILE);
    let first = Persist::ChatMessage(msg("status", "one", 10, 1));
    let second = Persist::Conversation(stored(false, msg("0x04aa", "two", 20, 2)));
    let third = Persist::ChatMessage(msg("status", "three", 30, 3));
    {
        let mut store = NodeStore::open(&path).unwrap();
        store
            .commit_batch(&[&first], &[], None, &[[1; 32]])
            .unwrap();
        // Killed before the line was flushed: shown again.
    }
    let ids = |store: &NodeStore| -> Vec<u8> {
        store
            .undelivered()
            .unwrap()
            .iter()
            .map(|u| u.row.message.message_id[0])
            .collect()
    };
    {
        let mut store = NodeStore::open(&path).unwrap();
        assert_eq!(ids(&store), vec![1]);
        assert_eq!(store.undelivered().unwrap()[0].row.kind, ChatKind::Public);
        store.mark_shown();
        // Shown, but no commit since: still past the durable cursor.
        assert_eq!(ids(&store), vec![1]);
        store
            .commit_batch(&[&second], &[], None, &[[2; 32]])
            .unwrap();
        // The cursor moved past 1 in the commit that queued 2; 2 is not shown yet.
        assert_eq!(ids(&store), vec![2]);
        store.mark_shown();
        store
            .commit_batch(&[&third], &[], None, &[[3; 32]])
            .unwrap();
        store.mark_shown();
        assert_eq!(ids(&store), vec![3]);
        // A clean stop commits the cursor on its own.
        store.commit_delivery_cursor().unwrap();
        assert_eq!(ids(&store), Vec::<u8>::new());
    }
    let store = NodeStore::open(&path).unwrap();
    assert_eq!(ids(&store), Vec::<u8>::new());
    assert_eq!(store.history("0x04aa").unwrap()[0].kind, ChatKind::Dm);
}

#[test]
fn a_version_1_store_is_migrated_in_place() {
    let dir = temp_dir("store-migrate");
    let path = dir.join(STORE_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')", [])
            .unwrap();
        conn.execute(
            "INSERT INTO chats (id, kind, name) VALUES ('status', 'public', 'status')",
            [],
        )
        .unwrap();
    }
    let store = NodeStore::open(&path).unwrap();
    assert_eq!(
        store.meta("schema").unwrap(),
        Some(SCHEMA_VERSION.to_string())
    );
    assert_eq!(store.chats().unwrap().len(), 1);
    assert!(store.undelivered().unwrap().is_empty());
}

/// Issue 18: the receive time is stored with each message (public and 1:1 alike) and read
/// back by /history and by the re-show at start; a message stored without one has none, and
/// a version 1 store's messages gain the column empty.
#[test]
fn messages_keep_their_receive_time() {
    let dir = temp_dir("store-received-at");
    let path = dir.join(STORE_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')", [])
            .unwrap();
        conn.execute(
            "INSERT INTO messages (message_id, kind, chat, sender, text, clock, timestamp_ms)
             VALUES (?1, 'public', 'status', ?2, 'old', 1, 1)",
            params![&[9u8; 32][..], &[4u8; 65][..]],
        )
        .unwrap();
    }
    let mut store = NodeStore::open(&path).unwrap();
    let public = Persist::ChatMessage(msg("status", "new", 200, 1));
    let dm = Persist::Conversation(stored(false, msg("0x04aa", "dm", 300, 2)));
    store
        .commit_batch_at(
            Some(1_700_000_000_123),
            &[&public, &dm],
            &[],
            None,
            &[[1; 32], [2; 32]],
        )
        .unwrap();
    let untimed = Persist::ChatMessage(msg("status", "untimed", 400, 3));
    store.commit_batch(&[&untimed], &[], None, &[]).unwrap();
    let times: Vec<(String, Option<u64>)> = store
        .history("status")
        .unwrap()
        .into_iter()
        .map(|r| (r.message.text, r.received_at_ms))
        .collect();
    assert_eq!(
        times,
        vec![
            ("old".into(), None),
            ("new".into(), Some(1_700_000_000_123)),
            ("untimed".into(), None),
        ]
    );
    assert_eq!(
        store.history("0x04aa").unwrap()[0].received_at_ms,
        Some(1_700_000_000_123)
    );
    let shown: Vec<Option<u64>> = store
        .undelivered()
        .unwrap()
        .into_iter()
        .map(|u| u.row.received_at_ms)
        .collect();
    assert_eq!(shown, vec![Some(1_700_000_000_123); 2]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A log of `n` rounds of churn: the same contact, an outgoing message then its `Posted`, a
/// contact-code time, and an accepted message each.
fn churn(n: u8) -> Vec<Record> {
    let contact = public_key(&SecretKey::from_byte_array(&[7u8; 32]).unwrap());
    let mut out = Vec::new();
    for i in 0..n {
        out.push(Record::Contact(contact));
        out.push(Record::Batch(vec![
            Record::Outgoing {
                id: [i; 32],
                to: vec![contact],
                plaintext: vec![i],
            },
            stored(false, msg("0x04aa", &format!("m{i}"), u64::from(i), i)),
        ]));
        out.push(Record::Posted { id: [i; 32] });
        out.push(Record::ContactCodePublished {
            at_ms: u64::from(i),
        });
    }
    out
}

fn commit_all(store: &mut NodeStore, records: &[Record]) {
    for r in records {
        store.commit(&Persist::Conversation(r.clone())).unwrap();
    }
}

#[test]
fn compaction_every_n_records_keeps_what_a_full_replay_restores() {
    let dir = temp_dir("store-compact");
    let path = dir.join(STORE_FILE);
    let log = churn(40);
    let mut store = NodeStore::open(&path).unwrap();
    store.set_compact_after_records(25);
    for r in &log {
        store.commit(&Persist::Conversation(r.clone())).unwrap();
        store.compact_if_due().unwrap();
    }
    assert_eq!(store.compactions(), log.len() as u64 / 25);
    assert!(store.tail_records() < 25);
    drop(store);
    let store = NodeStore::open(&path).unwrap();
    let restored = store.records().unwrap();
    // Snapshot + tail folds to what the whole log folds to: the same restored machine.
    assert_eq!(
        hush_core::chat::direct::compact(restored.clone()),
        hush_core::chat::direct::compact(log.clone())
    );
    assert!(
        restored.len() < log.len(),
        "{} ≥ {}",
        restored.len(),
        log.len()
    );
    // History is not the log's business: every message is still there.
    assert_eq!(store.history("0x04aa").unwrap().len(), 40);
}

#[test]
fn a_kill_during_compaction_leaves_the_old_log_and_after_it_the_new() {
    let dir = temp_dir("store-compact-kill");
    let path = dir.join(STORE_FILE);
    let log = churn(10);
    let mut store = NodeStore::open(&path).unwrap();
    commit_all(&mut store, &log[..20]);
    store.compact().unwrap();
    commit_all(&mut store, &log[20..]);
    let before = store.records().unwrap();
    for step in [1u8, 2] {
        let err = store
            .compact_with(|s| {
                if s == step {
                    anyhow::bail!("killed after step {s}")
                }
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
        assert_eq!(store.records().unwrap(), before, "step {step}");
    }
    // A real kill: a child process (this test binary) aborts inside the transaction, after
    // each step; the store it leaves restores the old log.
    drop(store);
    for step in ["1", "2"] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::tests::compaction_child_that_dies_midway",
                "--ignored",
                "--nocapture",
            ])
            .env(KILL_STORE_ENV, &path)
            .env(KILL_STEP_ENV, step)
            .status()
            .unwrap();
        assert!(!status.success(), "the child was to die at step {step}");
        assert_eq!(
            NodeStore::open(&path).unwrap().records().unwrap(),
            before,
            "killed at step {step}"
        );
    }
    let mut store = NodeStore::open(&path).unwrap();
    assert_eq!(store.records().unwrap(), before);
    store.compact().unwrap();
    let after = store.records().unwrap();
    assert_eq!(
        hush_core::chat::direct::compact(after.clone()),
        hush_core::chat::direct::compact(before)
    );
    assert_eq!(store.tail_records(), 0);
    drop(store);
    assert_eq!(NodeStore::open(&path).unwrap().records().unwrap(), after);
}

#[test]
fn a_corrupt_snapshot_is_a_clear_error() {
    let dir = temp_dir("store-snapshot-corrupt");
    let path = dir.join(STORE_FILE);
    let store = NodeStore::open(&path).unwrap();
    store
        .conn
        .execute(
            "INSERT INTO record_snapshot (id, through_seq, bytes) VALUES (1, 7, x'01000000')",
            [],
        )
        .unwrap();
    let err = store.records().unwrap_err();
    assert!(
        format!("{err:#}").contains("snapshot through 7 is corrupt"),
        "{err:#}"
    );
}

const KILL_STORE_ENV: &str = "HUSH_TEST_COMPACTION_KILL_STORE";
const KILL_STEP_ENV: &str = "HUSH_TEST_COMPACTION_KILL_STEP";

/// Run by `a_kill_during_compaction_leaves_the_old_log_and_after_it_the_new` in a child
/// process: compacts the store it is given and aborts (no unwinding, no rollback, no close)
/// right after the given step.
#[test]
#[ignore = "a child process of another test"]
fn compaction_child_that_dies_midway() {
    let (Some(path), Some(step)) = (
        std::env::var_os(KILL_STORE_ENV),
        std::env::var(KILL_STEP_ENV).ok(),
    ) else {
        return;
    };
    let step: u8 = step.parse().unwrap();
    let mut store = NodeStore::open(std::path::Path::new(&path)).unwrap();
    let _ = store.compact_with(|s| {
        if s == step {
            std::process::abort();
        }
        Ok(())
    });
}

/// Every file of `dir` (the store, its WAL and WAL index) searched for `needle`.
fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .map(|p| p.display().to_string())
        .collect()
}

/// A store with a contact, a 1:1 message, a public message and a sealed identity stand-in.
fn fill_store(store: &mut NodeStore, contact_secret: [u8; 32]) -> Vec<Record> {
    let contact = public_key(&SecretKey::from_byte_array(&contact_secret).unwrap());
    let records = vec![
        Record::Contact(contact),
        stored(false, msg("0x04aa", "a secret dm text", 10, 1)),
    ];
    for r in &records {
        store.commit(&Persist::Conversation(r.clone())).unwrap();
    }
    store
        .commit(&Persist::ChatMessage(msg(
            "status",
            "a secret public text",
            5,
            2,
        )))
        .unwrap();
    store
        .set_meta("device_node_key", &hex::encode(contact_secret))
        .unwrap();
    records
}

#[test]
fn an_encrypted_store_keeps_everything_and_shows_nothing_on_disk() {
    let dir = temp_dir("store-encrypted");
    let path = dir.join(STORE_FILE);
    let pass = StorePassphrase::new("correct horse").unwrap();
    let secret = [0x3c; 32];
    let records = {
        let mut store = NodeStore::open_keyed(&path, Some(&pass)).unwrap();
        let records = fill_store(&mut store, secret);
        // Open (WAL not checkpointed) and after close: no plaintext anywhere.
        for needle in [&b"a secret"[..], hex::encode(secret).as_bytes(), &secret] {
            assert_eq!(dir_contains(&dir, needle), Vec::<String>::new());
        }
        records
    };
    for needle in [&b"a secret"[..], hex::encode(secret).as_bytes(), &secret] {
        assert_eq!(dir_contains(&dir, needle), Vec::<String>::new());
    }
    let store = NodeStore::open_keyed(&path, Some(&pass)).unwrap();
    assert_eq!(store.records().unwrap(), records);
    assert_eq!(
        store.history("status").unwrap()[0].message.text,
        "a secret public text"
    );
    drop(store);

    let wrong = StorePassphrase::new("wrong horse").unwrap();
    let err = NodeStore::open_keyed(&path, Some(&wrong)).err().unwrap();
    assert!(format!("{err:#}").contains("wrong passphrase"), "{err:#}");
    let err = NodeStore::open(&path).err().unwrap();
    assert!(format!("{err:#}").contains("is encrypted"), "{err:#}");
}

#[test]
fn a_plaintext_store_with_history_is_encrypted_on_the_first_open_with_a_passphrase() {
    let dir = temp_dir("store-migrate");
    let path = dir.join(STORE_FILE);
    let secret = [0x5d; 32];
    let (records, history, chats) = {
        let mut store = NodeStore::open(&path).unwrap();
        fill_store(&mut store, secret);
        store.compact().unwrap();
        // One more in the tail, after the snapshot.
        store
            .commit(&Persist::Conversation(Record::Posted { id: [6; 32] }))
            .unwrap();
        (
            store.records().unwrap(),
            store.history("0x04aa").unwrap(),
            store.chats().unwrap(),
        )
    };
    assert!(!dir_contains(&dir, b"a secret dm text").is_empty());
    let pass = StorePassphrase::new("now encrypted").unwrap();
    let store = NodeStore::open_keyed(&path, Some(&pass)).unwrap();
    assert_eq!(store.records().unwrap(), records);
    assert_eq!(store.history("0x04aa").unwrap(), history);
    assert_eq!(store.chats().unwrap(), chats);
    assert_eq!(
        store.meta("schema").unwrap(),
        Some(SCHEMA_VERSION.to_string())
    );
    drop(store);
    for needle in [&b"a secret"[..], hex::encode(secret).as_bytes(), &secret] {
        assert_eq!(dir_contains(&dir, needle), Vec::<String>::new());
    }
    assert!(NodeStore::open(&path).is_err());
}
