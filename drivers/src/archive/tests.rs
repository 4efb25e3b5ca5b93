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
