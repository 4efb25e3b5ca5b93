use super::*;
use crate::ecies::public_key;
use proptest::prelude::*;
use serde_json::Value;

const CHAT_VECTORS: &str = include_str!("../../../../testdata/vectors/status_chat_vectors.json");
const DERIVED: &str = include_str!("../../../../testdata/vectors/derived_local_checks.json");

fn key(hex_str: &str) -> SecretKey {
    SecretKey::from_slice(&hex::decode(hex_str).unwrap()).unwrap()
}

fn topic_hex(t: Topic) -> String {
    hex::encode(t.0)
}

#[test]
fn partitioned_topic_vectors() {
    let v: Value = serde_json::from_str(CHAT_VECTORS).unwrap();
    let p = &v["partitioned_topic"];
    for (i, case) in p["cases"].as_array().unwrap().iter().enumerate() {
        let pk = public_key(&key(case["private_key"].as_str().unwrap()));
        assert_eq!(
            u64::from(partition(&pk)),
            case["partition"].as_u64().unwrap()
        );
        let derived = &p["derived_locally"];
        assert_eq!(
            partitioned_topic_string(&pk),
            derived[format!("topic_string_{i}")].as_str().unwrap()
        );
        assert_eq!(
            topic_hex(partitioned_topic(&pk)),
            derived[format!("topic_{i}")].as_str().unwrap()
        );
    }
}

#[test]
fn generic_discovery_topic_vector() {
    let v: Value = serde_json::from_str(CHAT_VECTORS).unwrap();
    let d = &v["generic_discovery_topic"];
    assert_eq!(DISCOVERY_TOPIC_STRING, d["name"].as_str().unwrap());
    assert_eq!(topic_hex(discovery_topic()), d["topic"].as_str().unwrap());
}

#[test]
fn negotiated_topic_vector_both_directions() {
    let v: Value = serde_json::from_str(DERIVED).unwrap();
    let n = &v["negotiated_topic_example"];
    let keys: Vec<SecretKey> = n["private_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| key(k.as_str().unwrap()))
        .collect();
    let ab = negotiated_secret(&keys[0], &public_key(&keys[1]));
    let ba = negotiated_secret(&keys[1], &public_key(&keys[0]));
    assert_eq!(ab, ba);
    assert_eq!(hex::encode(ab), n["shared_secret"].as_str().unwrap());
    assert_eq!(
        negotiated_topic_string(&ab),
        n["shared_secret"].as_str().unwrap()
    );
    assert_eq!(
        topic_hex(negotiated_topic(&ab)),
        n["topic"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(negotiated_key(&ab)),
        n["sym_key"].as_str().unwrap()
    );
}

#[test]
fn contact_code_and_personal_discovery_strings() {
    let pk = public_key(&key(
        "c6cbd7d76bc5baca530c875663711b947efa6a86a900a9e8645ce32e5821484e",
    ));
    let hexkey = hex::encode(pk.serialize_uncompressed());
    assert_eq!(hexkey.len(), 130);
    assert!(hexkey.starts_with("04"));
    let s = contact_code_topic_string(&pk);
    assert_eq!(s, format!("0x{hexkey}-contact-code"));
    assert_eq!(contact_code_topic(&pk), topic_from_string(&s));
    assert_eq!(contact_code_key(&pk), sym_key_from_password(s.as_bytes()));
    assert_eq!(
        personal_discovery_topic_string(&pk),
        format!("contact-discovery-{hexkey}")
    );
    assert_eq!(
        personal_discovery_topic(&pk),
        topic_from_string(&personal_discovery_topic_string(&pk))
    );
    // The topic is the first four bytes of keccak256 of the string.
    assert_eq!(contact_code_topic(&pk).0, keccak256(s.as_bytes())[..4]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The partition equals X mod 5000 computed a second, independent way (u128 limbs).
    #[test]
    fn partition_matches_reference(seed in any::<[u8; 32]>()) {
        let Ok(sk) = SecretKey::from_slice(&seed) else { return Ok(()); };
        let pk = public_key(&sk);
        let full = pk.serialize_uncompressed();
        let hi = u128::from_be_bytes(full[1..17].try_into().unwrap());
        let lo = u128::from_be_bytes(full[17..33].try_into().unwrap());
        // X = hi * 2^128 + lo; 2^128 mod 5000 computed by repeated doubling.
        let mut two128 = 1u128;
        for _ in 0..128 { two128 = (two128 * 2) % 5000; }
        let expect = ((hi % 5000) * two128 + lo % 5000) % 5000;
        prop_assert_eq!(u128::from(partition(&pk)), expect);
        prop_assert!(partition(&pk) < PARTITIONS);
    }
}
