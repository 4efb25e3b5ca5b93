use super::*;
use crate::test_util::temp_dir;

const SECRET_TEXT: &str = "the eagle lands at midnight";

fn pass(s: &str) -> StorePassphrase {
    StorePassphrase::new(s).unwrap()
}

fn no_crash(_: MigrationStep) -> anyhow::Result<()> {
    Ok(())
}

/// Writes `rows` rows holding [`SECRET_TEXT`] in WAL mode, as the stores do.
fn fill(conn: &Connection, rows: usize) {
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, text TEXT)")
        .unwrap();
    for n in 0..rows {
        conn.execute(
            "INSERT INTO t (text) VALUES (?1)",
            params![format!("{SECRET_TEXT} #{n}")],
        )
        .unwrap();
    }
}

fn rows(conn: &Connection) -> Vec<String> {
    let mut stmt = conn.prepare("SELECT text FROM t ORDER BY n").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Whether any file in `dir` contains `needle`.
fn any_file_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
}

#[test]
fn a_new_database_with_a_passphrase_is_encrypted_and_reopens_only_with_it() {
    let dir = temp_dir("cipher-new");
    let path = dir.join("db.sqlite");
    {
        let conn = open_with(&path, Some(&pass("right")), &mut no_crash).unwrap();
        fill(&conn, 50);
        // The WAL is still there (connection open): it is encrypted too.
        assert_eq!(any_file_contains(&dir, SECRET_TEXT.as_bytes()), None);
    }
    assert_eq!(file_state(&path).unwrap(), FileState::Encrypted);
    assert_eq!(any_file_contains(&dir, SECRET_TEXT.as_bytes()), None);
    let conn = open_with(&path, Some(&pass("right")), &mut no_crash).unwrap();
    assert_eq!(rows(&conn).len(), 50);
    drop(conn);

    let err = open_with(&path, Some(&pass("wrong")), &mut no_crash).unwrap_err();
    assert!(
        matches!(err.downcast_ref(), Some(OpenError::WrongPassphrase(_))),
        "{err:#}"
    );
    let err = open_with(&path, None, &mut no_crash).unwrap_err();
    assert!(
        matches!(err.downcast_ref(), Some(OpenError::PassphraseNeeded(_))),
        "{err:#}"
    );
    // Neither failed attempt changed the file.
    let conn = open_with(&path, Some(&pass("right")), &mut no_crash).unwrap();
    assert_eq!(rows(&conn).len(), 50);
}

#[test]
fn without_a_passphrase_the_file_stays_plain_sqlite() {
    let dir = temp_dir("cipher-plain");
    let path = dir.join("db.sqlite");
    fill(&open_with(&path, None, &mut no_crash).unwrap(), 3);
    assert_eq!(file_state(&path).unwrap(), FileState::Plaintext);
    assert!(any_file_contains(&dir, SECRET_TEXT.as_bytes()).is_some());
}

#[test]
fn an_empty_passphrase_is_refused() {
    assert!(StorePassphrase::new("").is_err());
    assert_eq!(
        format!("{:?}", pass("hunter2")),
        "StorePassphrase(<redacted>)"
    );
}

/// A plaintext database as a `kill -9` leaves it: committed rows partly only in the WAL.
fn plaintext_with_wal(dir: &Path, rows: usize) -> PathBuf {
    let live = dir.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let conn = Connection::open(live.join("db.sqlite")).unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    fill(&conn, rows);
    let path = dir.join("db.sqlite");
    // Copied while the connection is open: the main file and the uncheckpointed WAL.
    for suffix in ["", "-wal"] {
        std::fs::copy(
            sidecar(&live.join("db.sqlite"), suffix),
            sidecar(&path, suffix),
        )
        .unwrap();
    }
    drop(conn);
    std::fs::remove_dir_all(&live).unwrap();
    assert!(std::fs::metadata(sidecar(&path, "-wal")).unwrap().len() > 0);
    path
}

#[test]
fn a_plaintext_database_is_encrypted_in_place_with_its_wal() {
    let dir = temp_dir("cipher-migrate");
    let path = plaintext_with_wal(&dir, 200);
    let conn = open_with(&path, Some(&pass("p")), &mut no_crash).unwrap();
    assert_eq!(rows(&conn).len(), 200);
    assert_eq!(file_state(&path).unwrap(), FileState::Encrypted);
    assert!(!encrypting_path(&path).exists());
    drop(conn);
    assert_eq!(any_file_contains(&dir, SECRET_TEXT.as_bytes()), None);
    let conn = open_with(&path, Some(&pass("p")), &mut no_crash).unwrap();
    assert_eq!(rows(&conn)[199], format!("{SECRET_TEXT} #199"));
}

#[test]
fn a_migration_stopped_at_any_step_loses_nothing_and_completes_on_the_next_open() {
    for step in [
        MigrationStep::Exported,
        MigrationStep::Closed,
        MigrationStep::Renamed,
    ] {
        let dir = temp_dir("cipher-crash");
        let path = plaintext_with_wal(&dir, 100);
        let err = open_with(&path, Some(&pass("p")), &mut |s| {
            if s == step {
                anyhow::bail!("crash at {s:?}")
            }
            Ok(())
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("crash at"), "{err:#}");
        let expected = if step == MigrationStep::Renamed {
            FileState::Encrypted
        } else {
            FileState::Plaintext
        };
        assert_eq!(file_state(&path).unwrap(), expected, "{step:?}");
        let conn = open_with(&path, Some(&pass("p")), &mut no_crash).unwrap();
        assert_eq!(rows(&conn).len(), 100, "{step:?}");
        assert_eq!(file_state(&path).unwrap(), FileState::Encrypted);
        assert!(!encrypting_path(&path).exists(), "{step:?}");
    }
}

#[test]
fn a_leftover_partial_copy_beside_a_plaintext_file_is_discarded() {
    let dir = temp_dir("cipher-leftover");
    let path = plaintext_with_wal(&dir, 10);
    // What a kill in the middle of sqlcipher_export leaves: a torn copy and its journal.
    std::fs::write(encrypting_path(&path), vec![0x5a; 3000]).unwrap();
    std::fs::write(sidecar(&encrypting_path(&path), "-journal"), [1u8; 512]).unwrap();
    // Without a passphrase the leftover goes and the plaintext file opens as before.
    assert_eq!(
        rows(&open_with(&path, None, &mut no_crash).unwrap()).len(),
        10
    );
    assert!(!encrypting_path(&path).exists());
    std::fs::write(encrypting_path(&path), vec![0x5a; 3000]).unwrap();
    let conn = open_with(&path, Some(&pass("p")), &mut no_crash).unwrap();
    assert_eq!(rows(&conn).len(), 10);
    assert!(!sidecar(&encrypting_path(&path), "-journal").exists());
}

#[test]
fn a_passphrase_with_quotes_round_trips() {
    let dir = temp_dir("cipher-quotes");
    let path = dir.join("db.sqlite");
    let tricky = pass("it's a \"x'00'\" passphrase; --");
    fill(&open_with(&path, Some(&tricky), &mut no_crash).unwrap(), 1);
    assert_eq!(
        rows(&open_with(&path, Some(&tricky), &mut no_crash).unwrap()).len(),
        1
    );
    assert!(open_with(&path, Some(&pass("it's a ")), &mut no_crash).is_err());
}
