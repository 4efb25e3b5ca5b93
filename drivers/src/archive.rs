//! SQLite storage of a mailserver's envelope archive (`DATA_DIR/archive.sqlite`).
//!
//! Contract: [`ArchiveStore::insert`] stores one `Persist::Envelope` (idempotent: the envelope
//! hash is the primary key, a second insert is ignored) and returns only once SQLite has
//! committed it (autocommit, WAL journal); [`ArchiveStore::insert_batch`] does the same for
//! every envelope of one driver drain in one transaction (group commit). [`ArchiveStore::for_each`] replays every stored
//! envelope oldest first (by sent time, then hash), which is what
//! `hush_core::node::Node::restore_archived` expects at start: the core's bounded in-memory
//! index keeps the newest ones if the file holds more than it does. The table mirrors
//! status-go's LevelDB key (`sent ‖ hash ‖ topic`) as columns plus the raw RLP envelope.
//! With the node's passphrase the file is SQLCipher-encrypted like the node store
//! (`crate::sqlcipher`).

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{params, Connection};

use crate::sqlcipher::StorePassphrase;

/// File, inside the data directory, holding the mailserver archive.
pub const ARCHIVE_FILE: &str = "archive.sqlite";

/// One envelope to archive: `(hash, sent_secs, topic, raw RLP)`.
pub type ArchivedEnvelope<'a> = (&'a [u8; 32], u32, &'a [u8; 4], &'a [u8]);

/// An open archive database.
pub struct ArchiveStore {
    conn: Connection,
}

impl ArchiveStore {
    /// Opens (creating if needed) the plaintext database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<ArchiveStore> {
        ArchiveStore::open_keyed(path, None)
    }

    /// Opens (creating if needed) the database at `path`, encrypted at rest when `passphrase`
    /// is given (a plaintext archive is encrypted in place first; see `crate::sqlcipher`).
    pub fn open_keyed(
        path: &Path,
        passphrase: Option<&StorePassphrase>,
    ) -> anyhow::Result<ArchiveStore> {
        let conn = crate::sqlcipher::open(path, passphrase)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .context("archive: journal_mode")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS envelopes (
                 hash      BLOB PRIMARY KEY,
                 sent_secs INTEGER NOT NULL,
                 topic     BLOB NOT NULL,
                 raw       BLOB NOT NULL
             );
             CREATE INDEX IF NOT EXISTS envelopes_by_sent ON envelopes (sent_secs, hash);",
        )
        .context("archive: schema")?;
        Ok(ArchiveStore { conn })
    }

    /// Stores one envelope; `false` if its hash was already stored.
    pub fn insert(
        &self,
        hash: &[u8; 32],
        sent_secs: u32,
        topic: &[u8; 4],
        raw: &[u8],
    ) -> anyhow::Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO envelopes (hash, sent_secs, topic, raw) VALUES (?1, ?2, ?3, ?4)",
                params![&hash[..], sent_secs, &topic[..], raw],
            )
            .context("archive: insert")?;
        Ok(n == 1)
    }

    /// Stores several envelopes `(hash, sent_secs, topic, raw)` in one transaction; returns
    /// how many were new.
    pub fn insert_batch(&mut self, envelopes: &[ArchivedEnvelope<'_>]) -> anyhow::Result<u64> {
        if envelopes.is_empty() {
            return Ok(0);
        }
        let tx = self.conn.transaction().context("archive: begin")?;
        let mut new = 0u64;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO envelopes (hash, sent_secs, topic, raw) VALUES (?1, ?2, ?3, ?4)",
                )
                .context("archive: insert")?;
            for (hash, sent_secs, topic, raw) in envelopes {
                new += stmt
                    .execute(params![&hash[..], sent_secs, &topic[..], raw])
                    .context("archive: insert")? as u64;
            }
        }
        tx.commit().context("archive: commit")?;
        Ok(new)
    }

    /// Number of stored envelopes.
    pub fn len(&self) -> anyhow::Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM envelopes", [], |r| r.get(0))
            .context("archive: count")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> anyhow::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Calls `f` with every stored raw envelope, oldest first.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) -> anyhow::Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT raw FROM envelopes ORDER BY sent_secs ASC, hash ASC")
            .context("archive: select")?;
        let mut rows = stmt.query([]).context("archive: select")?;
        while let Some(row) = rows.next().context("archive: row")? {
            let raw: Vec<u8> = row.get(0).context("archive: raw column")?;
            f(&raw);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
