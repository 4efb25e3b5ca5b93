use super::*;
use crate::rng::{rng_from_seed, seed_from_u64};
use proptest::prelude::*;

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/vectors/ecies_geth_vectors.json"
));

fn sk(hex_str: &str) -> SecretKey {
    SecretKey::from_slice(&hex::decode(hex_str).unwrap()).unwrap()
}

#[test]
fn shared_key_static_vector() {
    let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let v = &v["shared_key_static"];
    let k1 = sk(v["prv1"].as_str().unwrap());
    let k2 = sk(v["prv2"].as_str().unwrap());
    let expected = v["expected_shared"].as_str().unwrap();
    assert_eq!(hex::encode(ecdh_x(&k1, &public_key(&k2))), expected);
    assert_eq!(hex::encode(ecdh_x(&k2, &public_key(&k1))), expected);
}

#[test]
fn shared_key_padding_vector() {
    let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let v = &v["shared_key_padding"];
    let k0 = sk(v["prv0"].as_str().unwrap());
    let k1 = sk(v["prv1"].as_str().unwrap());
    let wire0 = hex::decode(format!(
        "{}{}",
        v["pub0_x"].as_str().unwrap(),
        v["pub0_y"].as_str().unwrap()
    ))
    .unwrap();
    let wire1 = hex::decode(format!(
        "{}{}",
        v["pub1_x"].as_str().unwrap(),
        v["pub1_y"].as_str().unwrap()
    ))
    .unwrap();
    assert_eq!(pubkey_to_wire(&public_key(&k0)).to_vec(), wire0);
    assert_eq!(pubkey_to_wire(&public_key(&k1)).to_vec(), wire1);
    let p0 = pubkey_from_wire(&wire0).unwrap();
    let p1 = pubkey_from_wire(&wire1).unwrap();
    assert_eq!(ecdh_x(&k0, &p1), ecdh_x(&k1, &p0));
}

#[test]
fn pubkey_wire_forms() {
    let key = public_key(&sk(
        "7ebbc6a8358bc76dd73ebc557056702c8cfc34e5cfcd90eb83af0347575fd2ad",
    ));
    let wire = pubkey_to_wire(&key);
    assert_eq!(pubkey_from_wire(&wire).unwrap(), key);
    assert_eq!(
        pubkey_from_wire(&key.serialize_uncompressed()).unwrap(),
        key
    );
    assert_eq!(
        pubkey_from_wire(&key.serialize()),
        Err(EciesError::InvalidPublicKey)
    );
    assert_eq!(
        pubkey_from_wire(&[0u8; 64]),
        Err(EciesError::InvalidPublicKey)
    );
    assert_eq!(
        pubkey_from_wire(&wire[..63]),
        Err(EciesError::InvalidPublicKey)
    );
}

#[test]
fn roundtrip_with_and_without_shared_mac_data() {
    let mut rng = rng_from_seed(seed_from_u64(1));
    let secret = random_secret_key(&mut rng);
    let public = public_key(&secret);
    for plain in [&b""[..], b"hello", &[7u8; 1000][..]] {
        for s2 in [&b""[..], &[0x01, 0xb3][..]] {
            let ct = encrypt(&mut rng, &public, plain, s2);
            assert_eq!(ct.len(), plain.len() + OVERHEAD_BYTES);
            assert_eq!(ct[0], 0x04);
            assert_eq!(decrypt(&secret, &ct, s2).unwrap(), plain);
        }
    }
}

#[test]
fn explicit_ephemeral_is_deterministic() {
    let remote = public_key(&sk(
        "6a3d6396903245bba5837752b9e0348874e72db0c4e11e9c485a81b4ea4353b9",
    ));
    let eph = sk("7ebbc6a8358bc76dd73ebc557056702c8cfc34e5cfcd90eb83af0347575fd2ad");
    let a = encrypt_with(&eph, [9; 16], &remote, b"abc", b"");
    let b = encrypt_with(&eph, [9; 16], &remote, b"abc", b"");
    assert_eq!(a, b);
    assert_eq!(&a[1..65], &pubkey_to_wire(&public_key(&eph))[..]);
    assert_eq!(&a[65..81], &[9u8; 16]);
}

#[test]
fn tamper_is_detected() {
    let mut rng = rng_from_seed(seed_from_u64(2));
    let secret = random_secret_key(&mut rng);
    let ct = encrypt(&mut rng, &public_key(&secret), b"attack at dawn", b"s2");
    for i in 0..ct.len() {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        assert!(
            decrypt(&secret, &bad, b"s2").is_err(),
            "flip at byte {i} undetected"
        );
    }
    assert_eq!(decrypt(&secret, &ct, b"s3"), Err(EciesError::BadTag));
    assert_eq!(decrypt(&secret, &ct, b""), Err(EciesError::BadTag));
    let other = random_secret_key(&mut rng);
    assert_eq!(decrypt(&other, &ct, b"s2"), Err(EciesError::BadTag));
    assert!(matches!(
        decrypt(&secret, &ct[..100], b"s2"),
        Err(EciesError::TooShort { .. })
    ));
}

proptest! {
    #[test]
    fn decrypt_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let secret = sk("7ebbc6a8358bc76dd73ebc557056702c8cfc34e5cfcd90eb83af0347575fd2ad");
        let _ = decrypt(&secret, &bytes, b"");
        let _ = pubkey_from_wire(&bytes);
    }

    #[test]
    fn truncations_fail_cleanly(cut in 0usize..140, plain in proptest::collection::vec(any::<u8>(), 0..20)) {
        let secret = sk("7ebbc6a8358bc76dd73ebc557056702c8cfc34e5cfcd90eb83af0347575fd2ad");
        let mut rng = rng_from_seed(seed_from_u64(3));
        let ct = encrypt(&mut rng, &public_key(&secret), &plain, b"");
        let cut = cut.min(ct.len());
        let r = decrypt(&secret, &ct[..cut], b"");
        if cut == ct.len() {
            prop_assert_eq!(r.unwrap(), plain);
        } else {
            prop_assert!(r.is_err());
        }
    }
}
