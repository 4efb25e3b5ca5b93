use super::*;
use crate::keystore::LIGHT_SCRYPT;
use crate::store::{NodeStore, STORE_FILE};
use crate::test_util::temp_dir;
use rand_core::OsRng;

#[test]
fn plaintext_key_is_sealed_then_removed_and_reopened_with_the_passphrase() {
    let dir = temp_dir("identity-seal");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let (plain, src) = load_identity(&dir, &store, None, LIGHT_SCRYPT, &mut OsRng).unwrap();
    assert_eq!(src, IdentitySource::Plaintext);
    assert!(dir.join(NODEKEY_FILE).exists());

    let (sealed, src) = load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, &mut OsRng).unwrap();
    assert_eq!(src, IdentitySource::SealedNow);
    assert_eq!(sealed, plain, "migration keeps the identity");
    assert!(!dir.join(NODEKEY_FILE).exists(), "plaintext removed");
    let json = store.sealed_identity().unwrap().unwrap();
    assert!(
        !json.contains(&hex::encode(plain)),
        "the key is not stored in the clear"
    );

    let (again, src) = load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, &mut OsRng).unwrap();
    assert_eq!((again, src), (plain, IdentitySource::Sealed));
    let err = load_identity(&dir, &store, Some("wrong"), LIGHT_SCRYPT, &mut OsRng).unwrap_err();
    assert!(format!("{err:#}").contains("passphrase"), "{err:#}");
    let err = load_identity(&dir, &store, None, LIGHT_SCRYPT, &mut OsRng).unwrap_err();
    assert!(format!("{err:#}").contains("sealed"), "{err:#}");
}

#[test]
fn new_identity_is_created_sealed_and_a_foreign_plaintext_key_is_refused() {
    let dir = temp_dir("identity-new");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let (k, src) = load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, &mut OsRng).unwrap();
    assert_eq!(src, IdentitySource::Created);
    assert!(!dir.join(NODEKEY_FILE).exists());
    // A different plaintext key appears next to the sealed one: refuse, never guess.
    std::fs::write(dir.join(NODEKEY_FILE), hex::encode([0x22u8; 32])).unwrap();
    let err = load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, &mut OsRng).unwrap_err();
    assert!(err.to_string().contains("different key"), "{err}");
    // The same key (an interrupted migration) is cleaned up.
    std::fs::write(dir.join(NODEKEY_FILE), hex::encode(k)).unwrap();
    load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, &mut OsRng).unwrap();
    assert!(!dir.join(NODEKEY_FILE).exists());
}

#[test]
fn installation_id_is_drawn_once() {
    let dir = temp_dir("identity-install");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let a = installation_id(&store, &mut OsRng).unwrap();
    let b = installation_id(&store, &mut OsRng).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 36);
    assert_eq!(a.as_bytes()[14], b'4', "version 4: {a}");
}
