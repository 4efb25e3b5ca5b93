//! Security-layer targets: the protobufs (ProtocolMessage, bundles and their containers,
//! headers), bundle verification and contact codes; `SecurityService::decrypt` with a session
//! set up so that valid ciphertexts reach the ratchet.

use hush_core::ecies::public_key;
use hush_core::rng::{rng_from_seed, seed_from_u64};
use hush_core::security::bundle::{from_contact_code, to_contact_code, verify_bundle};
use hush_core::security::proto::{
    Bundle, BundleContainer, DhHeader, DirectMessageProtocol, DrHeader, ProtocolMessage, X3dhHeader,
};
use hush_core::security::{Received, SecurityConfig, SecurityService};
use prost::Message as _;

use crate::T0;

fn key_of(c: u8) -> secp256k1::SecretKey {
    secp256k1::SecretKey::from_byte_array(&[c; 32]).expect("valid key")
}

/// Every security protobuf decoder on the bytes, bundle verification of a decoded bundle and
/// the contact-code form (a bundle's contact code decodes to the same bundle), and the bytes
/// as a contact code.
pub fn security_proto(data: &[u8]) {
    if let Ok(m) = ProtocolMessage::decode(data) {
        for b in &m.bundles {
            let _ = verify_bundle(b, 16);
        }
    }
    if let Ok(b) = Bundle::decode(data) {
        let _ = verify_bundle(&b, 16);
        assert_eq!(from_contact_code(&to_contact_code(&b)), Ok(b));
    }
    if let Ok(c) = BundleContainer::decode(data) {
        if let Some(b) = &c.bundle {
            let _ = verify_bundle(b, 16);
        }
    }
    let _ = DirectMessageProtocol::decode(data);
    let _ = DrHeader::decode(data);
    let _ = DhHeader::decode(data);
    let _ = X3dhHeader::decode(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(b) = from_contact_code(s) {
            let _ = verify_bundle(&b, 16);
        }
    }
}

/// Bob's service with a published bundle; the same every call.
fn new_bob() -> (SecurityService, Bundle) {
    let mut rng = rng_from_seed(seed_from_u64(4));
    let mut bob =
        SecurityService::new(SecurityConfig::default(), key_of(2), "bob-1").expect("service");
    let (_, bundle) = bob.own_bundle(T0, &mut rng).expect("bundle");
    (bob, bundle)
}

/// `SecurityService::decrypt` by Bob (who has published a bundle) of a message from Alice.
/// First byte `0`: the rest is decoded as a ProtocolMessage and decrypted. Other: Alice
/// encrypts the rest for Bob (X3DH with his bundle; a DH-only message when the byte is odd),
/// the encoding gets one byte replaced at the position and value of the first two plaintext
/// bytes; the unmodified message must decrypt to the plaintext.
pub fn security_decrypt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mut bob, bundle) = new_bob();
    let mut rng = rng_from_seed(seed_from_u64(5));
    let alice_key = key_of(1);
    if mode == 0 {
        if let Ok(m) = ProtocolMessage::decode(rest) {
            let _ = bob.decrypt(T0, &mut rng, &public_key(&alice_key), &m);
        }
        let _ = bob.handle_timeout(T0.plus_millis(1_000));
        return;
    }
    let mut alice =
        SecurityService::new(SecurityConfig::default(), alice_key, "alice-1").expect("service");
    let bundles = if mode % 2 == 1 { vec![] } else { vec![bundle] };
    let Ok((_, m)) = alice.encrypt_for(T0, &mut rng, &bob.identity_public(), &bundles, rest) else {
        return;
    };
    let encoded = m.encode_to_vec();
    let mut mutated = encoded.clone();
    if let (Some(&pos), Some(&byte)) = (rest.first(), rest.get(1)) {
        let i = usize::from(pos) * mutated.len() / 256;
        mutated[i] = byte;
    }
    if mutated != encoded {
        // A twin of Bob (same keys, same prekey) reads the modified message.
        let (mut bob2, _) = new_bob();
        if let Ok(m) = ProtocolMessage::decode(mutated.as_slice()) {
            let _ = bob2.decrypt(T0, &mut rng, &public_key(&alice_key), &m);
        }
    }
    let (_, got) = bob.decrypt(T0, &mut rng, &public_key(&alice_key), &m);
    match got {
        Ok(Received::Direct(d)) => assert_eq!(d.plaintext, rest),
        other => panic!("a valid message from Alice was not read: {other:?}"),
    }
    // The same ratchet message again is a replay: refused (its key is gone). DH-only messages
    // have no per-message key; they are only run through again.
    let (_, again) = bob.decrypt(T0, &mut rng, &public_key(&alice_key), &m);
    if mode % 2 == 0 {
        assert!(!matches!(again, Ok(Received::Direct(_))), "replay accepted");
    }
}
