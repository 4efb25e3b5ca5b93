//! The node's durable store: `DATA_DIR/node.sqlite`.
//!
//! Contract:
//! - [`NodeStore::commit_batch`] stores every `Persist` action of one driver drain, with the
//!   chat-index changes of that drain, in ONE transaction (group commit: one WAL fsync for the
//!   whole drain) and returns only once SQLite has committed it (WAL journal,
//!   `synchronous = FULL`). The driver performs no action of that drain (no byte leaves, no
//!   event is printed) before it returns, so nothing leaves before the state it depends on is
//!   on disk. A `kill -9` at any moment therefore loses nothing the node had accepted or
//!   acknowledged, and a ratchet step is on disk before any ciphertext made with its keys
//!   leaves (core's durability contract, `hush_core::chat::direct`). Records keep their order
//!   inside the transaction. [`NodeStore::commit`] is the one-record form.
//!   [`NodeStore::commits`] counts the transactions committed (each is one WAL fsync; `/stats`
//!   shows it as `store_commits`).
//! - `Persist::Conversation` records are appended to `records` in emission order (their RLP
//!   encoding, `Record::encode`); [`NodeStore::records`] returns them in that order for
//!   `Node::restore`. The accepted messages they carry (`Record::Message`, also inside
//!   batches) and every `Persist::ChatMessage` also go to `messages`, in the same transaction:
//!   that table is the history (`/history`), deduplicated by message id.
//! - `chats` holds what the application joined or learned: public chats (rejoined at start),
//!   1:1 chats, groups (id and name, from `Event::GroupUpdated`).
//! - `own_envelopes` holds our own posts (`Persist::OwnEnvelope`) until they expire, so a post
//!   accepted just before a crash is gossiped after the restart ([`NodeStore::own_envelopes`]
//!   also forgets the expired ones).
//! - `identity` holds the node key sealed at rest as an Ethereum keystore v3 JSON document
//!   (scrypt + AES-128-CTR + Keccak MAC, `crate::keystore`); `meta` holds the installation id.
//! - Secrets (records, the sealed key) are never logged.
//! - At rest: with a passphrase ([`NodeStore::open_keyed`]) the whole file, its WAL and
//!   journal are SQLCipher-encrypted; a plaintext store is encrypted in place, crash-safe, on
//!   the first open with one (`crate::sqlcipher`, docs/storage.md).
//! - Delivery cursor (issue 16 item 3): `deliveries` is the log of received messages the
//!   driver committed for printing, and its cursor (everything at or below it deleted) is how
//!   far the application is known to have been shown them. A drain's commit appends its
//!   messages' ids (`commit_batch`'s `deliveries`); after the driver has flushed their lines it
//!   calls [`NodeStore::mark_shown`], and the NEXT commit (the next drain that writes anyway,
//!   or [`NodeStore::commit_delivery_cursor`] when idle or on a clean stop) moves the cursor in the same
//!   transaction as its records. At start [`NodeStore::undelivered`] lists what is past the
//!   cursor, which the driver prints again. A kill therefore re-prints at most the lines
//!   flushed since the last commit, and never loses one: at-least-once, duplicates carry the
//!   same `message_id` (see `crate::driver`, "Delivery").
//! - Schema: [`SCHEMA_V1`] then the named [`MIGRATIONS`], one transaction each.
//!
//! - Compaction (issue 16 item 10): once the log's tail holds [`DEFAULT_COMPACT_AFTER_RECORDS`]
//!   records, [`NodeStore::compact_if_due`] folds the snapshot and the tail
//!   (`hush_core::chat::direct::compact`: the same restored machine, canonical) into a new
//!   `record_snapshot` row and deletes the tail, in ONE transaction of its own after the
//!   drain's: a kill at any point restarts from either the old snapshot + tail or the new
//!   snapshot. [`NodeStore::records`] returns the snapshot's records, then the tail's.

use std::path::Path;

use anyhow::Context as _;
use hush_core::chat::direct::{compact, decode_snapshot, encode_snapshot, Record, StoredMessage};
use hush_core::node::{ChatMessage, Persist};
use rusqlite::{params, Connection, OptionalExtension};

use crate::sqlcipher::StorePassphrase;

/// File, inside the data directory, holding the node store.
pub const STORE_FILE: &str = "node.sqlite";

/// Schema version written to `meta`: 1 (the base schema, [`SCHEMA_V1`]) plus one per entry of
/// [`MIGRATIONS`]. Bump it by adding a migration when the tables change.
pub const SCHEMA_VERSION: u32 = 1 + MIGRATIONS.len() as u32;

/// The base schema (version 1). Later changes are [`MIGRATIONS`], never edits here.
const SCHEMA_V1: &str = "CREATE TABLE IF NOT EXISTS meta (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS identity (
         id       INTEGER PRIMARY KEY CHECK (id = 1),
         keystore TEXT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS records (
         seq    INTEGER PRIMARY KEY AUTOINCREMENT,
         record BLOB NOT NULL
     );
     CREATE TABLE IF NOT EXISTS messages (
         seq          INTEGER PRIMARY KEY AUTOINCREMENT,
         message_id   BLOB NOT NULL UNIQUE,
         kind         TEXT NOT NULL,
         chat         TEXT NOT NULL,
         sender       BLOB NOT NULL,
         text         TEXT NOT NULL,
         clock        INTEGER NOT NULL,
         timestamp_ms INTEGER NOT NULL
     );
     CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (chat, clock, seq);
     CREATE TABLE IF NOT EXISTS own_envelopes (
         hash        BLOB PRIMARY KEY,
         expiry_secs INTEGER NOT NULL,
         raw         BLOB NOT NULL
     );
     CREATE INDEX IF NOT EXISTS own_envelopes_by_expiry ON own_envelopes (expiry_secs);
     CREATE TABLE IF NOT EXISTS chats (
         id     TEXT PRIMARY KEY,
         kind   TEXT NOT NULL,
         name   TEXT NOT NULL,
         joined INTEGER NOT NULL DEFAULT 1
     );";

/// Schema migrations, in order: entry `i` takes version `i + 1` to `i + 2`. Each runs in one
/// transaction with its version bump.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        // Version 2: the delivery log past the "shown to the application" cursor (issue 16 item
        // 3). One row per received message the driver is about to print, written in the drain's
        // commit; rows at or below the cursor are deleted by a later commit once their lines
        // were flushed. `seq` never goes back (AUTOINCREMENT), so the cursor is a position.
        "v2_delivery_cursor",
        "CREATE TABLE deliveries (
         seq        INTEGER PRIMARY KEY AUTOINCREMENT,
         message_id BLOB NOT NULL
     );",
    ),
    (
        // Version 3: the compacted head of the record log (issue 16 item 10). `bytes` is
        // `hush_core::chat::direct::encode_snapshot` of the folded records up to and including
        // `through_seq`; `records` keeps only the tail after it.
        "v3_record_snapshot",
        "CREATE TABLE record_snapshot (
             id          INTEGER PRIMARY KEY CHECK (id = 1),
             through_seq INTEGER NOT NULL,
             bytes       BLOB NOT NULL
         );",
    ),
    (
        // Version 4: when this node accepted each message, ms since the Unix epoch on its own
        // clock (issue 18: `received_at` in the JSON lines, also for messages printed again
        // after a restart and for /history). NULL for messages stored before.
        "v4_received_at",
        "ALTER TABLE messages ADD COLUMN received_at_ms INTEGER;",
    ),
];

/// Records in the log's tail (after the snapshot) at which [`NodeStore::compact_if_due`]
/// folds them into the snapshot. Replay at start then costs the snapshot (the state's size)
/// plus at most this many records; each compaction reads and rewrites the whole state, so
/// 10,000 (a few thousand messages of ratchet and MVDS churn) keeps its cost rare.
pub const DEFAULT_COMPACT_AFTER_RECORDS: u64 = 10_000;

/// What kind of chat a message or chat row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatKind {
    /// A public chat (name).
    Public,
    /// A 1:1 chat (`0x04…` key of the other party).
    Dm,
    /// A private group (group id).
    Group,
}

impl ChatKind {
    /// The word used on disk and in JSON lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Public => "public",
            ChatKind::Dm => "dm",
            ChatKind::Group => "group",
        }
    }

    fn parse(s: &str) -> Option<ChatKind> {
        match s {
            "public" => Some(ChatKind::Public),
            "dm" => Some(ChatKind::Dm),
            "group" => Some(ChatKind::Group),
            _ => None,
        }
    }
}

/// A stored chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRow {
    /// Chat id: public name, `0x04…` key, or group id.
    pub id: String,
    /// Kind.
    pub kind: ChatKind,
    /// Display name (group name; the id otherwise).
    pub name: String,
}

/// A stored message (history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    /// Kind of its chat.
    pub kind: ChatKind,
    /// The message.
    pub message: ChatMessage,
    /// When this node accepted it, ms since the Unix epoch (`None`: stored before hush kept it).
    pub received_at_ms: Option<u64>,
}

/// A change to the chat index (`chats`) committed with a drain's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatChange {
    /// Records a chat as joined (upsert: a group's name follows its latest update).
    Upsert {
        /// Chat id.
        id: String,
        /// Kind.
        kind: ChatKind,
        /// Display name.
        name: String,
    },
    /// Marks a chat left (not rejoined at start; its history stays).
    Leave {
        /// Chat id.
        id: String,
    },
}

/// The open store.
pub struct NodeStore {
    conn: Connection,
    /// Transactions committed by [`NodeStore::commit_batch`] since open.
    commits: u64,
    /// Highest `deliveries.seq` committed (what the driver may print).
    queued_seq: i64,
    /// Highest `deliveries.seq` whose line the driver has flushed ([`NodeStore::mark_shown`]).
    shown_seq: i64,
    /// Highest `deliveries.seq` the store has deleted as shown: the durable cursor.
    cursor_seq: i64,
    /// Records in the log's tail (not yet in the snapshot).
    tail_records: u64,
    /// See [`DEFAULT_COMPACT_AFTER_RECORDS`].
    compact_after_records: u64,
    /// Compactions done since open (`/stats`: `store_compactions`).
    compactions: u64,
}

/// What one compaction did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compaction {
    /// Records folded (the old snapshot's plus the tail's).
    pub records_in: usize,
    /// Records in the new snapshot.
    pub records_out: usize,
    /// Size of the new snapshot, bytes.
    pub snapshot_bytes: usize,
}

/// A message committed for delivery and not yet known to be shown: printed at start
/// ([`NodeStore::undelivered`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    /// Its position in the delivery log.
    pub seq: i64,
    /// The message and its kind.
    pub row: HistoryRow,
}

impl NodeStore {
    /// Opens (creating if needed) the plaintext store at `path`: [`NodeStore::open_keyed`]
    /// without a passphrase.
    pub fn open(path: &Path) -> anyhow::Result<NodeStore> {
        NodeStore::open_keyed(path, None)
    }

    /// Opens (creating if needed) the store at `path`, encrypted at rest when `passphrase` is
    /// given (a plaintext store is encrypted in place first; see `crate::sqlcipher`), bringing
    /// an older schema up to [`SCHEMA_VERSION`] with the migrations in [`MIGRATIONS`] (each in
    /// its own transaction, with the version bump: a kill during one leaves the store at the
    /// version before it).
    pub fn open_keyed(
        path: &Path,
        passphrase: Option<&StorePassphrase>,
    ) -> anyhow::Result<NodeStore> {
        let mut conn = crate::sqlcipher::open(path, passphrase)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .context("store: journal_mode")?;
        // FULL: a commit survives power loss too, not only a killed process.
        conn.pragma_update(None, "synchronous", "FULL")
            .context("store: synchronous")?;
        conn.execute_batch(SCHEMA_V1).context("store: schema")?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .context("store: schema version")?;
        let mut version = match version {
            // A new store: the base schema just made, migrated below.
            None => {
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')", [])
                    .context("store: schema version")?;
                1
            }
            Some(v) => match v.parse::<u32>() {
                Ok(v) if (1..=SCHEMA_VERSION).contains(&v) => v,
                _ => anyhow::bail!(
                    "{}: schema version {v}, this hush understands {SCHEMA_VERSION}",
                    path.display()
                ),
            },
        };
        while version < SCHEMA_VERSION {
            let (name, sql) = MIGRATIONS[version as usize - 1];
            let tx = conn.transaction().context("store: begin migration")?;
            tx.execute_batch(sql)
                .with_context(|| format!("store: migration {name}"))?;
            version += 1;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema'",
                params![version.to_string()],
            )
            .context("store: schema version")?;
            tx.commit()
                .with_context(|| format!("store: migration {name}"))?;
        }
        let queued: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM deliveries", [], |r| {
                r.get(0)
            })
            .context("store: deliveries")?;
        let tail: i64 = conn
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
            .context("store: records")?;
        Ok(NodeStore {
            conn,
            commits: 0,
            queued_seq: queued,
            shown_seq: 0,
            cursor_seq: 0,
            tail_records: tail as u64,
            compact_after_records: DEFAULT_COMPACT_AFTER_RECORDS,
            compactions: 0,
        })
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .context("store: meta")
    }

    /// Sets a `meta` value.
    pub fn set_meta(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .context("store: meta")?;
        Ok(())
    }

    /// The sealed identity (keystore v3 JSON), if any.
    pub fn sealed_identity(&self) -> anyhow::Result<Option<String>> {
        self.conn
            .query_row("SELECT keystore FROM identity WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .context("store: identity")
    }

    /// Stores (or replaces) the sealed identity.
    pub fn set_sealed_identity(&self, keystore_json: &str) -> anyhow::Result<()> {
        self.conn
            .execute(
                "INSERT INTO identity (id, keystore) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET keystore = excluded.keystore",
                params![keystore_json],
            )
            .context("store: identity")?;
        Ok(())
    }

    /// Commits one `Persist` action of the node (see the module contract). `Persist::Envelope`
    /// (mailserver archive) is not this store's business and is refused.
    pub fn commit(&mut self, p: &Persist) -> anyhow::Result<()> {
        self.commit_batch(&[p], &[], None, &[])
    }

    /// Commits, in one transaction and in this order, the delivery cursor (advanced to what
    /// [`NodeStore::mark_shown`] last saw flushed), `records` (the `Persist` actions of one
    /// drain, in emission order), the chat-index `changes`, the `deliveries` (ids of the
    /// received messages of this drain the driver will print, in print order; each must be a
    /// message of `records` or already stored) and — when `prune_before_secs` is given — the
    /// deletion of our own envelopes that expired before it (housekeeping that rides on a
    /// commit made anyway). Nothing to write: no transaction. `Persist::Envelope` (mailserver
    /// archive) is not this store's business and is refused (nothing is written).
    pub fn commit_batch(
        &mut self,
        records: &[&Persist],
        changes: &[ChatChange],
        prune_before_secs: Option<u64>,
        deliveries: &[[u8; 32]],
    ) -> anyhow::Result<()> {
        self.commit_batch_at(None, records, changes, prune_before_secs, deliveries)
    }

    /// [`NodeStore::commit_batch`], recording `received_at_ms` (ms since the Unix epoch, the
    /// node's clock) as the time the messages in `records` were accepted.
    pub fn commit_batch_at(
        &mut self,
        received_at_ms: Option<u64>,
        records: &[&Persist],
        changes: &[ChatChange],
        prune_before_secs: Option<u64>,
        deliveries: &[[u8; 32]],
    ) -> anyhow::Result<()> {
        if records.is_empty()
            && changes.is_empty()
            && prune_before_secs.is_none()
            && deliveries.is_empty()
        {
            return Ok(());
        }
        let tx = self.conn.transaction().context("store: begin")?;
        let cursor = self.shown_seq;
        if cursor > self.cursor_seq {
            advance_delivery_cursor(&tx, cursor)?;
        }
        for p in records {
            write_record(&tx, p, received_at_ms)?;
        }
        let conversation = records
            .iter()
            .filter(|p| matches!(p, Persist::Conversation(_)))
            .count() as u64;
        for change in changes {
            write_chat_change(&tx, change)?;
        }
        let mut queued = self.queued_seq;
        for id in deliveries {
            tx.prepare_cached("INSERT INTO deliveries (message_id) VALUES (?1)")
                .and_then(|mut s| s.execute(params![&id[..]]))
                .context("store: delivery")?;
            queued = tx.last_insert_rowid();
        }
        if let Some(secs) = prune_before_secs {
            delete_expired_own_envelopes(&tx, secs)?;
        }
        tx.commit().context("store: commit")?;
        self.commits += 1;
        self.tail_records += conversation;
        self.cursor_seq = self.cursor_seq.max(cursor);
        self.queued_seq = queued;
        Ok(())
    }

    /// The driver has flushed the lines of every delivery committed so far: the next commit
    /// moves the durable cursor past them (see the module contract).
    pub fn mark_shown(&mut self) {
        self.shown_seq = self.queued_seq;
    }

    /// Whether lines were shown past the durable cursor (a commit would move it).
    pub fn cursor_lags(&self) -> bool {
        self.shown_seq > self.cursor_seq
    }

    /// Moves the durable cursor to what [`NodeStore::mark_shown`] last saw, in a transaction
    /// of its own if it lags (on a clean stop, so a restart re-prints nothing).
    pub fn commit_delivery_cursor(&mut self) -> anyhow::Result<()> {
        if self.shown_seq <= self.cursor_seq {
            return Ok(());
        }
        let tx = self.conn.transaction().context("store: begin")?;
        advance_delivery_cursor(&tx, self.shown_seq)?;
        tx.commit().context("store: commit")?;
        self.commits += 1;
        self.cursor_seq = self.shown_seq;
        Ok(())
    }

    /// The messages committed for delivery past the durable cursor, in delivery order: the
    /// driver prints them at start (then [`NodeStore::mark_shown`]).
    pub fn undelivered(&self) -> anyhow::Result<Vec<Undelivered>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.seq, m.kind, m.chat, m.sender, m.text, m.clock, m.timestamp_ms,
                        m.message_id, m.received_at_ms
                 FROM deliveries d JOIN messages m ON m.message_id = d.message_id
                 ORDER BY d.seq",
            )
            .context("store: deliveries")?;
        let rows: Vec<(i64, RawMessage)> = stmt
            .query_map([], |r| Ok((r.get(0)?, raw_message(r, 1)?)))
            .context("store: deliveries")?
            .collect::<Result<_, _>>()
            .context("store: deliveries")?;
        rows.into_iter()
            .map(|(seq, raw)| {
                Ok(Undelivered {
                    seq,
                    row: history_row(raw)?,
                })
            })
            .collect()
    }

    /// Transactions committed since the store was opened (each costs one WAL fsync).
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Every conversation record, in commit order (for `Node::restore`): the snapshot's
    /// (the folded head of the log), then the tail's.
    pub fn records(&self) -> anyhow::Result<Vec<Record>> {
        let mut out = self.snapshot()?.map(|(_, r)| r).unwrap_or_default();
        out.extend(self.tail()?.into_iter().map(|(_, r)| r));
        Ok(out)
    }

    /// The snapshot: the seq it covers and its records.
    fn snapshot(&self) -> anyhow::Result<Option<(i64, Vec<Record>)>> {
        NodeStoreView { conn: &self.conn }.snapshot()
    }

    /// Sets the tail length at which [`NodeStore::compact_if_due`] compacts (tests, benches).
    pub fn set_compact_after_records(&mut self, records: u64) {
        self.compact_after_records = records.max(1);
    }

    /// Compactions since open.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    /// Records in the log's tail (after the snapshot).
    pub fn tail_records(&self) -> u64 {
        self.tail_records
    }

    /// Compacts when the tail holds [`DEFAULT_COMPACT_AFTER_RECORDS`] (or the configured
    /// count) records or more; called by the driver after a commit.
    pub fn compact_if_due(&mut self) -> anyhow::Result<Option<Compaction>> {
        if self.tail_records < self.compact_after_records {
            return Ok(None);
        }
        self.compact().map(Some)
    }

    /// Folds the snapshot and the whole tail into a new snapshot and deletes the tail, in ONE
    /// transaction: a kill at any point leaves either the old snapshot and tail or the new
    /// snapshot and an empty tail, both restoring the same machine
    /// (`hush_core::chat::direct::compact`).
    pub fn compact(&mut self) -> anyhow::Result<Compaction> {
        self.compact_with(|_| Ok(()))
    }

    /// [`NodeStore::compact`] with a hook run after each write inside the transaction (step 1
    /// snapshot written, 2 tail deleted); an error from it rolls everything back (tests: a
    /// kill at that point).
    fn compact_with(
        &mut self,
        mut after_step: impl FnMut(u8) -> anyhow::Result<()>,
    ) -> anyhow::Result<Compaction> {
        let tx = self.conn.transaction().context("store: begin compaction")?;
        let (head, tail) = {
            let view = NodeStoreView { conn: &tx };
            (view.snapshot()?, view.tail()?)
        };
        let through = tail
            .last()
            .map(|(seq, _)| *seq)
            .or(head.as_ref().map(|(seq, _)| *seq))
            .unwrap_or(0);
        let mut all = head.map(|(_, r)| r).unwrap_or_default();
        all.extend(tail.into_iter().map(|(_, r)| r));
        let records_in = all.len();
        let folded = compact(all);
        let bytes = encode_snapshot(&folded);
        tx.execute(
            "INSERT INTO record_snapshot (id, through_seq, bytes) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET through_seq = excluded.through_seq,
                                           bytes = excluded.bytes",
            params![through, bytes],
        )
        .context("store: snapshot")?;
        after_step(1)?;
        tx.execute("DELETE FROM records WHERE seq <= ?1", params![through])
            .context("store: compaction")?;
        after_step(2)?;
        tx.commit().context("store: compaction")?;
        self.commits += 1;
        self.compactions += 1;
        self.tail_records = 0;
        Ok(Compaction {
            records_in,
            records_out: folded.len(),
            snapshot_bytes: bytes.len(),
        })
    }

    /// The tail of the record log (after the snapshot), with seqs.
    fn tail(&self) -> anyhow::Result<Vec<(i64, Record)>> {
        NodeStoreView { conn: &self.conn }.tail()
    }
}

/// Reads shared by the store and its compaction transaction.
struct NodeStoreView<'a> {
    conn: &'a Connection,
}

impl NodeStoreView<'_> {
    fn snapshot(&self) -> anyhow::Result<Option<(i64, Vec<Record>)>> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT through_seq, bytes FROM record_snapshot WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("store: snapshot")?;
        row.map(|(seq, bytes)| {
            let records = decode_snapshot(&bytes)
                .with_context(|| format!("store: the record snapshot through {seq} is corrupt"))?;
            Ok((seq, records))
        })
        .transpose()
    }

    fn tail(&self) -> anyhow::Result<Vec<(i64, Record)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, record FROM records ORDER BY seq")
            .context("store: records")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .context("store: records")?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, bytes) = row.context("store: records")?;
            let record = Record::decode(&bytes)
                .with_context(|| format!("store: record {seq} is corrupt"))?;
            out.push((seq, record));
        }
        Ok(out)
    }
}

impl NodeStore {
    /// Deletes our own envelopes that expired before `now_secs`.
    pub fn prune_own_envelopes(&self, now_secs: u64) -> anyhow::Result<()> {
        delete_expired_own_envelopes(&self.conn, now_secs)
    }

    /// Our own envelopes that have not expired at `now_secs` (oldest expiry first); expired
    /// ones are deleted.
    pub fn own_envelopes(&self, now_secs: u64) -> anyhow::Result<Vec<Vec<u8>>> {
        self.prune_own_envelopes(now_secs)?;
        let mut stmt = self
            .conn
            .prepare("SELECT raw FROM own_envelopes ORDER BY expiry_secs, hash")
            .context("store: own envelopes")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .context("store: own envelopes")?;
        rows.collect::<Result<_, _>>()
            .context("store: own envelopes")
    }

    /// Records a chat (upsert: a group's name follows its latest update), in its own
    /// transaction (the driver batches these with [`NodeStore::commit_batch`]).
    pub fn upsert_chat(&self, id: &str, kind: ChatKind, name: &str) -> anyhow::Result<()> {
        write_chat_change(
            &self.conn,
            &ChatChange::Upsert {
                id: id.to_string(),
                kind,
                name: name.to_string(),
            },
        )
    }

    /// Marks a chat left (it is not rejoined at start; its history stays).
    pub fn leave_chat(&self, id: &str) -> anyhow::Result<()> {
        write_chat_change(&self.conn, &ChatChange::Leave { id: id.to_string() })
    }

    /// Chats, joined ones only, in id order.
    pub fn chats(&self) -> anyhow::Result<Vec<ChatRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, name FROM chats WHERE joined = 1 ORDER BY kind, id")
            .context("store: chats")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .context("store: chats")?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, name) = row.context("store: chats")?;
            let kind = ChatKind::parse(&kind)
                .with_context(|| format!("store: chat {id} has unknown kind {kind:?}"))?;
            out.push(ChatRow { id, kind, name });
        }
        Ok(out)
    }

    /// Joined groups whose id or name is `name_or_id` (several when names collide).
    pub fn find_groups(&self, name_or_id: &str) -> anyhow::Result<Vec<ChatRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, name FROM chats
                 WHERE kind = 'group' AND joined = 1 AND (id = ?1 OR name = ?1) ORDER BY id",
            )
            .context("store: groups")?;
        let rows = stmt
            .query_map(params![name_or_id], |r| {
                Ok(ChatRow {
                    id: r.get(0)?,
                    kind: ChatKind::Group,
                    name: r.get(1)?,
                })
            })
            .context("store: groups")?;
        rows.collect::<Result<_, _>>().context("store: groups")
    }

    /// The chat with this id (joined or not).
    pub fn chat(&self, id: &str) -> anyhow::Result<Option<ChatRow>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT kind, name FROM chats WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("store: chat")?;
        row.map(|(kind, name)| {
            let kind = ChatKind::parse(&kind)
                .with_context(|| format!("store: chat {id} has unknown kind {kind:?}"))?;
            Ok(ChatRow {
                id: id.to_string(),
                kind,
                name,
            })
        })
        .transpose()
    }

    /// The history of one chat, in clock order (ties: commit order).
    pub fn history(&self, chat: &str) -> anyhow::Result<Vec<HistoryRow>> {
        self.query_messages(
            "SELECT kind, chat, sender, text, clock, timestamp_ms, message_id, received_at_ms
             FROM messages
             WHERE chat = ?1 ORDER BY clock, seq",
            Some(chat),
        )
    }

    /// Every public-chat message (restored into the node's dedup set at start).
    pub fn public_messages(&self) -> anyhow::Result<Vec<ChatMessage>> {
        Ok(self
            .query_messages(
                "SELECT kind, chat, sender, text, clock, timestamp_ms, message_id, received_at_ms
             FROM messages
                 WHERE kind = 'public' ORDER BY seq",
                None,
            )?
            .into_iter()
            .map(|h| h.message)
            .collect())
    }

    fn query_messages(&self, sql: &str, chat: Option<&str>) -> anyhow::Result<Vec<HistoryRow>> {
        let mut stmt = self.conn.prepare(sql).context("store: messages")?;
        let map = |r: &rusqlite::Row<'_>| raw_message(r, 0);
        let rows: Vec<_> = match chat {
            Some(c) => stmt.query_map(params![c], map),
            None => stmt.query_map([], map),
        }
        .context("store: messages")?
        .collect::<Result<_, _>>()
        .context("store: messages")?;
        rows.into_iter().map(history_row).collect()
    }
}

/// A `messages` row as read: kind, chat, sender, text, clock, timestamp, id, received at.
type RawMessage = (
    String,
    String,
    Vec<u8>,
    String,
    i64,
    i64,
    Vec<u8>,
    Option<i64>,
);

/// Reads the eight `messages` columns starting at column `at`.
fn raw_message(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RawMessage> {
    Ok((
        r.get(at)?,
        r.get(at + 1)?,
        r.get(at + 2)?,
        r.get(at + 3)?,
        r.get(at + 4)?,
        r.get(at + 5)?,
        r.get(at + 6)?,
        r.get(at + 7)?,
    ))
}

fn history_row(raw: RawMessage) -> anyhow::Result<HistoryRow> {
    let (kind, chat, sender, text, clock, ts, id, received_at) = raw;
    let kind = ChatKind::parse(&kind).context("store: message kind")?;
    let from: [u8; 65] = sender
        .try_into()
        .map_err(|_| anyhow::anyhow!("store: message sender is not 65 bytes"))?;
    let message_id: [u8; 32] = id
        .try_into()
        .map_err(|_| anyhow::anyhow!("store: message id is not 32 bytes"))?;
    Ok(HistoryRow {
        kind,
        message: ChatMessage {
            chat,
            from,
            text,
            clock: clock as u64,
            timestamp_ms: ts as u64,
            message_id,
        },
        received_at_ms: received_at.map(|t| t as u64),
    })
}

/// Deletes the delivery log up to `seq` (inclusive): the cursor moves past it.
fn advance_delivery_cursor(conn: &Connection, seq: i64) -> anyhow::Result<()> {
    conn.prepare_cached("DELETE FROM deliveries WHERE seq <= ?1")
        .and_then(|mut s| s.execute(params![seq]))
        .context("store: delivery cursor")?;
    Ok(())
}

/// Writes one `Persist` record (inside the caller's transaction).
fn write_record(tx: &Connection, p: &Persist, received_at_ms: Option<u64>) -> anyhow::Result<()> {
    match p {
        Persist::ChatMessage(m) => insert_message(tx, ChatKind::Public, m, received_at_ms)?,
        Persist::Conversation(record) => {
            tx.prepare_cached("INSERT INTO records (record) VALUES (?1)")
                .and_then(|mut s| s.execute(params![record.encode()]))
                .context("store: record")?;
            for r in record.clone().flatten() {
                if let Record::Message(StoredMessage { group, message }) = r {
                    let kind = if group { ChatKind::Group } else { ChatKind::Dm };
                    insert_message(tx, kind, &message, received_at_ms)?;
                    if kind == ChatKind::Dm {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO chats (id, kind, name) VALUES (?1, 'dm', ?1)",
                        )
                        .and_then(|mut s| s.execute(params![message.chat]))
                        .context("store: chat")?;
                    }
                }
            }
        }
        Persist::OwnEnvelope {
            hash,
            expiry_secs,
            raw,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO own_envelopes (hash, expiry_secs, raw) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![&hash[..], i64::from(*expiry_secs), raw]))
            .context("store: own envelope")?;
        }
        other => anyhow::bail!("store: not a node-store record: {}", persist_kind(other)),
    }
    Ok(())
}

fn write_chat_change(conn: &Connection, change: &ChatChange) -> anyhow::Result<()> {
    match change {
        ChatChange::Upsert { id, kind, name } => conn
            .prepare_cached(
                "INSERT INTO chats (id, kind, name, joined) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, joined = 1",
            )
            .and_then(|mut s| s.execute(params![id, kind.as_str(), name])),
        ChatChange::Leave { id } => conn
            .prepare_cached("UPDATE chats SET joined = 0 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id])),
    }
    .context("store: chat")?;
    Ok(())
}

fn delete_expired_own_envelopes(conn: &Connection, now_secs: u64) -> anyhow::Result<()> {
    let now = i64::try_from(now_secs).unwrap_or(i64::MAX);
    conn.prepare_cached("DELETE FROM own_envelopes WHERE expiry_secs < ?1")
        .and_then(|mut s| s.execute(params![now]))
        .context("store: own envelopes")?;
    Ok(())
}

fn insert_message(
    tx: &Connection,
    kind: ChatKind,
    m: &ChatMessage,
    received_at_ms: Option<u64>,
) -> anyhow::Result<()> {
    // SQLite integers are i64; clocks are status-react's `ms × 100`, far below 2^63.
    let clock = i64::try_from(m.clock).unwrap_or(i64::MAX);
    let ts = i64::try_from(m.timestamp_ms).unwrap_or(i64::MAX);
    let received = received_at_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
    tx.prepare_cached(
        "INSERT OR IGNORE INTO messages
             (message_id, kind, chat, sender, text, clock, timestamp_ms, received_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            &m.message_id[..],
            kind.as_str(),
            m.chat,
            &m.from[..],
            m.text,
            clock,
            ts,
            received
        ])
    })
    .context("store: message")?;
    Ok(())
}

fn persist_kind(p: &Persist) -> &'static str {
    match p {
        Persist::ChatMessage(_) => "chat message",
        Persist::Envelope { .. } => "envelope",
        Persist::Conversation(_) => "conversation",
        Persist::OwnEnvelope { .. } => "own envelope",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests;
