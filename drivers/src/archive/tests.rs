use super::*;

#[test]
fn insert_is_idempotent_and_survives_reopen_in_order() {
    let dir = std::env::temp_dir().join(format!("hush-archive-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(ARCHIVE_FILE);
    {
        let s = ArchiveStore::open(&path).unwrap();
        assert!(s.is_empty().unwrap());
        assert!(s.insert(&[2; 32], 20, &[1; 4], b"second").unwrap());
        assert!(s.insert(&[1; 32], 10, &[1; 4], b"first").unwrap());
        assert!(!s.insert(&[1; 32], 10, &[1; 4], b"first").unwrap());
    }
    let s = ArchiveStore::open(&path).unwrap();
    assert_eq!(s.len().unwrap(), 2);
    let mut got = Vec::new();
    s.for_each(|r| got.push(r.to_vec())).unwrap();
    assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_batch_inserts_once_per_hash_in_one_transaction() {
    let dir = std::env::temp_dir().join(format!("hush-archive-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(ARCHIVE_FILE);
    {
        let mut s = ArchiveStore::open(&path).unwrap();
        assert_eq!(s.insert_batch(&[]).unwrap(), 0);
        let batch: Vec<ArchivedEnvelope<'_>> = vec![
            (&[2; 32], 20, &[1; 4], b"second"),
            (&[1; 32], 10, &[1; 4], b"first"),
            (&[1; 32], 10, &[1; 4], b"first"),
        ];
        assert_eq!(s.insert_batch(&batch).unwrap(), 2);
        assert_eq!(s.insert_batch(&batch[..1]).unwrap(), 0);
    }
    let s = ArchiveStore::open(&path).unwrap();
    let mut got = Vec::new();
    s.for_each(|r| got.push(r.to_vec())).unwrap();
    assert_eq!(got, vec![b"first".to_vec(), b"second".to_vec()]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_archive_with_a_passphrase_is_encrypted_and_a_plaintext_one_is_migrated() {
    let dir = crate::test_util::temp_dir("archive-cipher");
    let path = dir.join(ARCHIVE_FILE);
    {
        let s = ArchiveStore::open(&path).unwrap();
        assert!(s
            .insert(&[1; 32], 10, &[1; 4], b"plaintext envelope")
            .unwrap());
    }
    let pass = StorePassphrase::new("archive pass").unwrap();
    {
        let s = ArchiveStore::open_keyed(&path, Some(&pass)).unwrap();
        assert!(s.insert(&[2; 32], 20, &[1; 4], b"second envelope").unwrap());
        assert_eq!(s.len().unwrap(), 2);
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(8).any(|w| w == b"envelope"));
    }
    assert!(ArchiveStore::open(&path).is_err());
    let s = ArchiveStore::open_keyed(&path, Some(&pass)).unwrap();
    let mut got = Vec::new();
    s.for_each(|r| got.push(r.to_vec())).unwrap();
    assert_eq!(
        got,
        vec![b"plaintext envelope".to_vec(), b"second envelope".to_vec()]
    );
}
