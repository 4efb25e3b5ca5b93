use super::*;
use crate::rng::seed_from_u64;

fn api() -> ShhApi {
    ShhApi::new(ApiConfig::default(), seed_from_u64(7))
}

fn received(payload: &[u8], signer: Option<PublicKey>) -> ReceivedMessage {
    ReceivedMessage {
        envelope_hash: [payload.first().copied().unwrap_or(0); 32],
        topic: Topic([1, 2, 3, 4]),
        payload: payload.to_vec(),
        padding: vec![],
        signer,
        sent_secs: 1_600_000_000,
        ttl_secs: 50,
        pow: 0.5,
    }
}

fn public(secret: &SecretKey) -> PublicKey {
    crate::ecies::public_key(secret)
}

#[test]
fn ids_are_64_hex_and_deterministic_from_the_seed() {
    let (mut a, mut b) = (api(), api());
    let ida = a.new_sym_key().unwrap();
    assert_eq!(ida, b.new_sym_key().unwrap());
    assert_eq!(ida.len(), 2 * API_ID_BYTES);
    assert!(ida
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(ida, a.new_key_pair().unwrap());
}

#[test]
fn sym_keys_add_get_delete_and_refuse_bad_keys() {
    let mut a = api();
    let id = a.add_sym_key(&[9; 32]).unwrap();
    assert!(a.has_sym_key(&id));
    assert_eq!(a.sym_key(&id).unwrap(), &[9; 32]);
    assert_eq!(a.add_sym_key(&[0; 32]), Err(ApiError::InvalidSymmetricKey));
    assert_eq!(a.add_sym_key(&[1; 31]), Err(ApiError::InvalidSymmetricKey));
    assert!(a.delete_sym_key(&id));
    assert!(!a.delete_sym_key(&id));
    assert_eq!(a.sym_key(&id), Err(ApiError::UnknownKey));
}

#[test]
fn password_key_is_pbkdf2_of_the_password() {
    let mut a = api();
    let id = a.add_sym_key_from_password(b"hello").unwrap();
    assert_eq!(a.sym_key(&id).unwrap(), &sym_key_from_password(b"hello"));
}

#[test]
fn key_pairs_import_and_delete() {
    let mut a = api();
    assert_eq!(
        a.add_private_key(&[0; 32]),
        Err(ApiError::InvalidPrivateKey)
    );
    assert_eq!(
        a.add_private_key(&[1; 33]),
        Err(ApiError::InvalidPrivateKey)
    );
    let id = a.add_private_key(&[1; 32]).unwrap();
    assert_eq!(a.key_pair(&id).unwrap().secret_bytes(), [1; 32]);
    assert!(a.has_key_pair(&id));
    assert!(a.delete_key_pair(&id));
    assert!(!a.has_key_pair(&id));
}

#[test]
fn limits_refuse_and_count() {
    let mut a = ShhApi::new(
        ApiConfig {
            max_key_pairs: 1,
            max_sym_keys: 1,
            max_filters: 1,
            max_filter_messages: 2,
        },
        seed_from_u64(1),
    );
    a.new_key_pair().unwrap();
    assert!(matches!(a.new_key_pair(), Err(ApiError::TooMany { .. })));
    a.new_sym_key().unwrap();
    assert!(matches!(
        a.add_sym_key_from_password(b"x"),
        Err(ApiError::TooMany { .. })
    ));
    a.add_filter(1, None, None, FilterMode::Polled).unwrap();
    assert!(matches!(
        a.add_filter(2, None, None, FilterMode::Polled),
        Err(ApiError::TooMany { .. })
    ));
    assert_eq!(a.stats().limit_refusals, 3);
}

#[test]
fn polled_filter_keeps_a_bounded_buffer_oldest_dropped() {
    let mut a = ShhApi::new(
        ApiConfig {
            max_filter_messages: 2,
            ..ApiConfig::default()
        },
        seed_from_u64(1),
    );
    let id = a.add_filter(5, None, None, FilterMode::Polled).unwrap();
    for p in [1u8, 2, 3] {
        assert_eq!(a.deliver(5, &received(&[p], None)), None);
    }
    let got = a.take_messages(&id).unwrap();
    assert_eq!(
        got.iter().map(|m| m.payload[0]).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(a.stats().filter_messages_dropped, 1);
    assert!(a.take_messages(&id).unwrap().is_empty());
    // Unknown Whisper filters are not the API's.
    assert_eq!(a.deliver(6, &received(&[1], None)), None);
    assert!(!a.owns(6));
}

#[test]
fn pushed_filter_returns_the_message_and_keeps_nothing() {
    let mut a = api();
    let secret = SecretKey::from_byte_array(&[3; 32]).unwrap();
    let id = a
        .add_filter(8, None, Some(public(&secret)), FilterMode::Pushed)
        .unwrap();
    let pushed = a.deliver(8, &received(b"hi", None)).unwrap();
    assert_eq!(pushed.filter, id);
    assert_eq!(pushed.message.payload, b"hi");
    assert_eq!(
        pushed.message.recipient,
        Some(public(&secret).serialize_uncompressed())
    );
    // A pushed filter is not polled, and is removed only as a subscription.
    assert_eq!(a.take_messages(&id), Err(ApiError::UnknownFilter));
    assert_eq!(
        a.remove_filter(&id, FilterMode::Polled),
        Err(ApiError::UnknownFilter)
    );
    assert_eq!(a.remove_filter(&id, FilterMode::Pushed), Ok(8));
    assert!(!a.owns(8));
}

#[test]
fn signer_filter_drops_other_signers() {
    let mut a = api();
    let alice = public(&SecretKey::from_byte_array(&[4; 32]).unwrap());
    let bob = public(&SecretKey::from_byte_array(&[5; 32]).unwrap());
    let id = a
        .add_filter(1, Some(alice), None, FilterMode::Polled)
        .unwrap();
    a.deliver(1, &received(b"a", Some(alice)));
    a.deliver(1, &received(b"b", Some(bob)));
    a.deliver(1, &received(b"c", None));
    let got = a.take_messages(&id).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sig, Some(alice.serialize_uncompressed()));
    assert_eq!(a.stats().signer_mismatches, 2);
}

#[test]
fn debug_output_never_shows_keys() {
    let mut a = api();
    let id = a.add_sym_key(&[0xab; 32]).unwrap();
    let shown = format!("{a:?}");
    assert!(!shown.contains("171") && !shown.contains("ab, ab") && !shown.contains(&id));
}
