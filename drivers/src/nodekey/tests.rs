use super::*;
use crate::test_util::temp_dir;
use rand_core::OsRng;

#[test]
fn created_once_then_reused() {
    let dir = temp_dir("nodekey").join("nested");
    let k1 = load_or_create(&dir, &mut OsRng).unwrap();
    let text = fs::read_to_string(dir.join(NODEKEY_FILE)).unwrap();
    assert_eq!(text, hex::encode(k1));
    assert_eq!(text.len(), 64);
    let k2 = load_or_create(&dir, &mut OsRng).unwrap();
    assert_eq!(k1, k2);
    assert!(!dir.join("nodekey.tmp").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(NODEKEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn geth_format_with_newline_is_accepted() {
    let dir = temp_dir("nodekey-geth");
    let hex_key = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";
    fs::write(dir.join(NODEKEY_FILE), format!("{hex_key}\n")).unwrap();
    let k = load_or_create(&dir, &mut OsRng).unwrap();
    assert_eq!(hex::encode(k), hex_key);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_files_are_errors_not_replaced() {
    let dir = temp_dir("nodekey-bad");
    let path = dir.join(NODEKEY_FILE);
    fs::write(&path, "not hex").unwrap();
    assert!(matches!(
        load_or_create(&dir, &mut OsRng),
        Err(NodeKeyError::BadFormat { .. })
    ));
    fs::write(&path, "00".repeat(32)).unwrap();
    assert!(matches!(
        load_or_create(&dir, &mut OsRng),
        Err(NodeKeyError::InvalidKey { .. })
    ));
    // Still there, untouched.
    assert_eq!(fs::read_to_string(&path).unwrap(), "00".repeat(32));
    fs::remove_dir_all(dir).unwrap();
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(s in ".{0,100}") {
        let _ = parse_nodekey(&s, Path::new("x"));
    }
}
