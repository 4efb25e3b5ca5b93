use super::*;
use crate::keystore::LIGHT_SCRYPT;
use crate::store::{NodeStore, STORE_FILE};
use crate::test_util::temp_dir;
use rand_core::OsRng;

#[test]
fn plaintext_key_is_sealed_then_removed_and_reopened_with_the_passphrase() {
    let dir = temp_dir("identity-seal");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let (plain, src) = load_identity(&dir, &store, None, LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    assert_eq!(src, IdentitySource::Plaintext);
    assert!(dir.join(NODEKEY_FILE).exists());

    let (sealed, src) =
        load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    assert_eq!(src, IdentitySource::SealedNow);
    assert_eq!(sealed, plain, "migration keeps the identity");
    assert!(!dir.join(NODEKEY_FILE).exists(), "plaintext removed");
    let json = store.sealed_identity().unwrap().unwrap();
    assert!(
        !json.contains(&hex::encode(plain)),
        "the key is not stored in the clear"
    );

    let (again, src) =
        load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    assert_eq!((again, src), (plain, IdentitySource::Sealed));
    let err =
        load_identity(&dir, &store, Some("wrong"), LIGHT_SCRYPT, false, &mut OsRng).unwrap_err();
    assert!(format!("{err:#}").contains("passphrase"), "{err:#}");
    let err = load_identity(&dir, &store, None, LIGHT_SCRYPT, false, &mut OsRng).unwrap_err();
    assert!(format!("{err:#}").contains("sealed"), "{err:#}");
}

#[test]
fn new_identity_is_created_sealed_and_a_foreign_plaintext_key_is_refused() {
    let dir = temp_dir("identity-new");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let (k, src) =
        load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    assert_eq!(src, IdentitySource::Created);
    assert!(!dir.join(NODEKEY_FILE).exists());
    // A different plaintext key appears next to the sealed one: refuse, never guess.
    std::fs::write(dir.join(NODEKEY_FILE), hex::encode([0x22u8; 32])).unwrap();
    let err = load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap_err();
    assert!(err.to_string().contains("different key"), "{err}");
    // The same key (an interrupted migration) is cleaned up.
    std::fs::write(dir.join(NODEKEY_FILE), hex::encode(k)).unwrap();
    load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
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

/// Issue 16 item 6: seal an identity, truncate `node.sqlite` to 0 bytes: the next start must
/// not draw a new identity silently; `replace_identity` is the explicit way to start over.
#[test]
fn a_lost_sealed_identity_is_not_silently_replaced() {
    let dir = temp_dir("identity-lost-sealed");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let (old, _) =
        load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    drop(store);
    let marker = std::fs::read_to_string(dir.join(IDENTITY_MARKER_FILE)).unwrap();
    let address = format!(
        "0x{}\n",
        hex::encode(crate::keystore::address_of_secret(&old).unwrap())
    );
    assert_eq!(marker, address);

    std::fs::File::create(dir.join(STORE_FILE)).unwrap(); // truncated to 0 bytes
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let err = load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(address.trim()) && err.contains("--replace-identity"),
        "{err}"
    );
    assert_eq!(
        store.sealed_identity().unwrap(),
        None,
        "nothing was created"
    );
    assert!(!dir.join(NODEKEY_FILE).exists());
    // Without a passphrase too (it would have made a plaintext key).
    load_identity(&dir, &store, None, LIGHT_SCRYPT, false, &mut OsRng).unwrap_err();
    assert!(!dir.join(NODEKEY_FILE).exists());

    let (new, src) =
        load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, true, &mut OsRng).unwrap();
    assert_eq!(src, IdentitySource::Created);
    assert_ne!(new, old);
    let marker = std::fs::read_to_string(dir.join(IDENTITY_MARKER_FILE)).unwrap();
    assert!(marker.contains(&hex::encode(
        crate::keystore::address_of_secret(&new).unwrap()
    )));
    // From now on the new identity loads as usual.
    let (again, _) =
        load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    assert_eq!(again, new);
}

#[test]
fn a_deleted_plaintext_key_is_not_silently_replaced() {
    let dir = temp_dir("identity-lost-plain");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    load_identity(&dir, &store, None, LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    std::fs::remove_file(dir.join(NODEKEY_FILE)).unwrap();
    let err = load_identity(&dir, &store, None, LIGHT_SCRYPT, false, &mut OsRng).unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
    assert!(!dir.join(NODEKEY_FILE).exists());
}

/// A data directory from before the marker: the first start writes it.
#[test]
fn an_existing_identity_gets_its_marker() {
    let dir = temp_dir("identity-marker-upgrade");
    let store = NodeStore::open(&dir.join(STORE_FILE)).unwrap();
    let (k, _) = load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    std::fs::remove_file(dir.join(IDENTITY_MARKER_FILE)).unwrap();
    let (again, src) =
        load_identity(&dir, &store, Some("pw"), LIGHT_SCRYPT, false, &mut OsRng).unwrap();
    assert_eq!((again, src), (k, IdentitySource::Sealed));
    assert!(dir.join(IDENTITY_MARKER_FILE).exists());
}
