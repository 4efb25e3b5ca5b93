//! The node's SQLite files at rest: encrypted with SQLCipher when a passphrase is given.
//!
//! Contract ([`open`], used by `crate::store` and `crate::archive`):
//! - One library serves both cases: the bundled SQLCipher without a key is plain SQLite.
//! - With a passphrase the file is keyed with `PRAGMA key = '<passphrase>'` and SQLCipher 4's
//!   defaults: the page key is PBKDF2-HMAC-SHA512 of the passphrase ([`KDF_ITERATIONS`]
//!   iterations, 16-byte random salt in the file's first 16 bytes), every page is AES-256-CBC
//!   with a random IV and authenticated with HMAC-SHA512, in the main file and in its `-wal` /
//!   `-journal`. Temporary tables and sorts stay in memory (the bundled build sets
//!   `SQLITE_TEMP_STORE=2`). The first read checks the key: a wrong passphrase is
//!   [`OpenError::WrongPassphrase`], never a raw "file is not a database".
//! - A plaintext file given a passphrase is encrypted first, crash-safe ([`encrypt_in_place`]):
//!   `sqlcipher_export()` into `FILE.encrypting`, the plaintext connection closed (its WAL
//!   checkpointed and deleted, so no plaintext WAL can be replayed into the encrypted file),
//!   the copy fsynced and renamed over FILE, the directory fsynced. Until the rename the
//!   plaintext file is intact; at the next open a leftover `FILE.encrypting` beside a
//!   plaintext FILE is deleted and the migration redone. A kill at any moment loses nothing.
//! - An encrypted file opened without a passphrase is [`OpenError::PassphraseNeeded`].
//! - The passphrase is never logged; [`StorePassphrase`]'s `Debug` is redacted. It is not wiped
//!   from memory.

use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use rusqlite::{params, Connection, ErrorCode};

/// SQLCipher 4's default PBKDF2-HMAC-SHA512 iteration count, used as is (`PRAGMA kdf_iter`
/// is never set): the cost of every open with a passphrase (docs/storage.md has the figure).
pub const KDF_ITERATIONS: u32 = 256_000;

/// Suffix of the encrypted copy made while a plaintext file is encrypted in place.
pub const ENCRYPTING_SUFFIX: &str = ".encrypting";

/// Environment variable (testing only) naming a [`MigrationStep`] (`exported`, `closed`,
/// `renamed`) at which `hush` exits abruptly (code `crate::driver::INJECTED_CRASH_EXIT_CODE`,
/// no cleanup) while encrypting a plaintext store: a `kill -9` at that point.
pub const INJECT_CRASH_ENV: &str = "HUSH_INJECT_CRASH_DURING_ENCRYPTION";

/// The first 16 bytes of every plaintext SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The passphrase the store files are encrypted with (non-empty: SQLCipher treats an empty
/// key as "no encryption").
#[derive(Clone)]
pub struct StorePassphrase(String);

impl StorePassphrase {
    /// The passphrase; empty is refused.
    pub fn new(passphrase: &str) -> anyhow::Result<StorePassphrase> {
        if passphrase.is_empty() {
            bail!("an empty passphrase cannot encrypt the store; give a non-empty one");
        }
        Ok(StorePassphrase(passphrase.to_string()))
    }
}

impl fmt::Debug for StorePassphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorePassphrase(<redacted>)")
    }
}

/// What a database file on disk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    /// No file, or an empty one: a new database.
    Absent,
    /// A plaintext SQLite database.
    Plaintext,
    /// Not a plaintext SQLite database: SQLCipher-encrypted (or damaged).
    Encrypted,
}

/// Why a store file did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Encrypted, and no passphrase given.
    #[error(
        "{0} is encrypted (or is not a SQLite file): give the passphrase with --passphrase-file FILE or {env}",
        env = crate::keystore::cli::PASSPHRASE_ENV
    )]
    PassphraseNeeded(PathBuf),
    /// The key does not decrypt the first page.
    #[error(
        "cannot decrypt {0}: wrong passphrase (it was encrypted with another one), or the file is damaged"
    )]
    WrongPassphrase(PathBuf),
}

/// A point of [`encrypt_in_place`] after which tests simulate a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationStep {
    /// The encrypted copy is written; the plaintext connection is still open (its WAL too).
    Exported,
    /// The plaintext connection is closed; the copy is not yet fsynced nor renamed.
    Closed,
    /// The copy has replaced the plaintext file; the directory is not yet fsynced.
    Renamed,
}

impl MigrationStep {
    fn parse(s: &str) -> Option<MigrationStep> {
        match s {
            "exported" => Some(MigrationStep::Exported),
            "closed" => Some(MigrationStep::Closed),
            "renamed" => Some(MigrationStep::Renamed),
            _ => None,
        }
    }
}

/// What the file at `path` is (see [`FileState`]).
pub fn file_state(path: &Path) -> anyhow::Result<FileState> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Absent),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut head = Vec::with_capacity(SQLITE_HEADER.len());
    (&mut file)
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(if head.is_empty() {
        FileState::Absent
    } else if head == SQLITE_HEADER {
        FileState::Plaintext
    } else {
        FileState::Encrypted
    })
}

/// Opens the database at `path` (see the module contract): plaintext without a passphrase,
/// encrypted with one (a plaintext file is encrypted in place first). The crash injection of
/// [`INJECT_CRASH_ENV`] applies.
pub fn open(path: &Path, passphrase: Option<&StorePassphrase>) -> anyhow::Result<Connection> {
    let crash_at = std::env::var(INJECT_CRASH_ENV)
        .ok()
        .and_then(|s| MigrationStep::parse(&s));
    open_with(path, passphrase, &mut |step| {
        if Some(step) == crash_at {
            eprintln!("hush: injected crash while encrypting {}", path.display());
            std::process::exit(crate::driver::INJECTED_CRASH_EXIT_CODE);
        }
        Ok(())
    })
}

/// [`open`] with a hook run after each [`MigrationStep`] (an error from it stops there, as a
/// crash would; tests).
pub fn open_with(
    path: &Path,
    passphrase: Option<&StorePassphrase>,
    after_step: &mut dyn FnMut(MigrationStep) -> anyhow::Result<()>,
) -> anyhow::Result<Connection> {
    let state = file_state(path)?;
    let leftover = encrypting_path(path);
    if leftover.exists() && state != FileState::Encrypted {
        // An interrupted migration (the rename never happened): the plaintext file is
        // authoritative, the partial copy is discarded (and redone below with a passphrase).
        remove_with_sidecars(&leftover)?;
    }
    match (state, passphrase) {
        (FileState::Encrypted, None) => Err(OpenError::PassphraseNeeded(path.to_path_buf()).into()),
        (FileState::Absent | FileState::Plaintext, None) => {
            Connection::open(path).with_context(|| format!("opening {}", path.display()))
        }
        (FileState::Plaintext, Some(pass)) => {
            encrypt_in_place(path, pass, after_step)?;
            open_keyed(path, pass)
        }
        (FileState::Absent | FileState::Encrypted, Some(pass)) => open_keyed(path, pass),
    }
}

/// Opens `path` keyed with `pass` and checks the key by reading the schema.
fn open_keyed(path: &Path, pass: &StorePassphrase) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    // rusqlite quotes the value as an SQL string literal.
    conn.pragma_update(None, "key", &pass.0)
        .with_context(|| format!("keying {}", path.display()))?;
    // The first read derives the key and decrypts page 1.
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(conn),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            Err(OpenError::WrongPassphrase(path.to_path_buf()).into())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Encrypts the plaintext database at `path` in place with `pass`, crash-safe (see the module
/// contract); `after_step` runs after each [`MigrationStep`].
pub fn encrypt_in_place(
    path: &Path,
    pass: &StorePassphrase,
    after_step: &mut dyn FnMut(MigrationStep) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let copy = encrypting_path(path);
    remove_with_sidecars(&copy)?;
    let copy_str = copy
        .to_str()
        .with_context(|| format!("{} is not UTF-8", copy.display()))?;
    let what = || format!("encrypting {}", path.display());
    // Opening the plaintext file recovers its WAL (or rolls back a hot journal): the export
    // sees every committed transaction.
    let conn = Connection::open(path).with_context(what)?;
    conn.execute(
        "ATTACH DATABASE ?1 AS encrypted KEY ?2",
        params![copy_str, pass.0],
    )
    .with_context(what)?;
    conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))
        .with_context(what)?;
    conn.execute("DETACH DATABASE encrypted", [])
        .with_context(what)?;
    after_step(MigrationStep::Exported)?;
    // The last connection's close checkpoints the WAL into the plaintext file and deletes it.
    conn.close().map_err(|(_, e)| e).with_context(what)?;
    let wal = sidecar(path, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        // After the rename SQLite would replay these plaintext frames into the encrypted file.
        bail!(
            "{}: its write-ahead log {} was not checkpointed (is another process using it?)",
            what(),
            wal.display()
        );
    }
    after_step(MigrationStep::Closed)?;
    File::open(&copy)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", copy.display()))?;
    // The shared-memory index of the plaintext WAL holds no content; it must not describe the
    // new file.
    remove_if_present(&sidecar(path, "-shm"))?;
    std::fs::rename(&copy, path).with_context(what)?;
    after_step(MigrationStep::Renamed)?;
    sync_parent_dir(path)
}

/// `FILE.encrypting`: the encrypted copy being made of FILE.
pub fn encrypting_path(path: &Path) -> PathBuf {
    sidecar(path, ENCRYPTING_SUFFIX)
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes a database file with its journal, WAL and WAL index.
fn remove_with_sidecars(path: &Path) -> anyhow::Result<()> {
    // The journals first: a journal without its database is inert, the reverse is not.
    for suffix in ["-journal", "-wal", "-shm"] {
        remove_if_present(&sidecar(path, suffix))?;
    }
    remove_if_present(path)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

fn sync_parent_dir(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests;
