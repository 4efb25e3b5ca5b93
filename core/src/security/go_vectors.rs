//! The encryption vectors produced by status-go's own code (4c0d8de, `protocol/encryption` and
//! its vendored `doubleratchet`; testdata/vectors/go-generated/encryption/README.md): bundles,
//! X3DH, Double Ratchet KDF steps and messages, ProtocolMessage, DH-only. Each file is decoded,
//! verified, decrypted with the keys it names, and re-encoded byte for byte where the README
//! says the bytes are deterministic (everything but the bundle timestamps and the DH-only
//! GCM nonce, which are replayed from the vector to re-encrypt).

use std::collections::VecDeque;

use prost::Message as _;
use rand_core::{CryptoRng, RngCore};
use secp256k1::{PublicKey, SecretKey};
use serde_json::Value;

use super::bundle;
use super::proto::{Bundle, ProtocolMessage};
use super::ratchet::{header_encoding, Header, RatchetState, Suite};
use super::service::{OwnPreKeyRecord, Persist, Received, SecurityService};
use super::{x3dh, SecurityConfig};
use crate::ecies::{ecdh_x, public_key};
use crate::Time;

const T0: Time = Time(1_575_600_000_000);

macro_rules! vector {
    ($file:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/vectors/go-generated/encryption/",
            $file
        )))
        .expect("vector JSON")
    };
}

fn hex_of(v: &Value, field: &str) -> Vec<u8> {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing"));
    hex::decode(s).unwrap_or_else(|e| panic!("{field}: {e}"))
}

fn key32(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().expect("32 bytes")
}

/// The README's fixed keys: 32 copies of one byte.
fn fixed(byte: u8) -> SecretKey {
    SecretKey::from_byte_array(&[byte; 32]).unwrap()
}

fn compressed(key: &SecretKey) -> String {
    hex::encode(public_key(key).serialize())
}

/// An RNG that hands out exactly the bytes it was given (the fixed ratchet keys and the
/// recorded nonce the Go run used), and fails the test if asked for more.
struct Replay(VecDeque<u8>);

impl Replay {
    fn of(parts: &[&[u8]]) -> Replay {
        Replay(parts.iter().flat_map(|p| p.iter().copied()).collect())
    }
}

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = self
                .0
                .pop_front()
                .expect("the vector's randomness is used up");
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Replay {}

#[test]
fn keys_file_matches_the_fixed_private_keys() {
    let v = vector!("keys.json");
    for (name, byte) in [
        ("alice_identity", 0x11),
        ("alice_ephemeral", 0x22),
        ("bob_identity", 0x33),
        ("bob_signed_prekey", 0x44),
        ("alice_ratchet", 0x55),
        ("bob_ratchet", 0x66),
    ] {
        let private = hex_of(&v, &format!("{name}_private"));
        assert_eq!(private, [byte; 32], "{name}");
        let key = SecretKey::from_byte_array(&key32(&private)).unwrap();
        assert_eq!(
            compressed(&key),
            v[format!("{name}_public_compressed")].as_str().unwrap(),
            "{name}"
        );
        if let Some(full) = v[format!("{name}_public_uncompressed")].as_str() {
            assert_eq!(
                hex::encode(public_key(&key).serialize_uncompressed()),
                full,
                "{name}"
            );
        }
    }
}

#[test]
fn bundle_decodes_verifies_and_re_encodes() {
    let v = vector!("bundle.json");
    let bob = fixed(0x33);
    for (bytes_field, signature_field, timestamp_field, versions) in [
        (
            "bundle_hex",
            "signature",
            "timestamp_ns",
            &[("bob-installation-1", 0u32, 1u32)][..],
        ),
        (
            "two_installation_bundle_hex",
            "two_installation_bundle_signature",
            "two_installation_bundle_timestamp",
            &[("bob-installation-0", 12, 0), ("bob-installation-1", 3, 1)][..],
        ),
    ] {
        let bytes = hex_of(&v, bytes_field);
        let b = Bundle::decode(bytes.as_slice()).expect(bytes_field);
        assert_eq!(b.encode_to_vec(), bytes, "{bytes_field}: re-encoding");
        assert_eq!(hex::encode(&b.identity), v["identity"].as_str().unwrap());
        assert_eq!(
            hex::encode(&b.signature),
            v[signature_field].as_str().unwrap()
        );
        assert_eq!(Some(b.timestamp), v[timestamp_field].as_i64());
        let verified = bundle::verify_bundle(&b, 16).expect(bytes_field);
        assert_eq!(verified.identity, public_key(&bob));
        assert_eq!(verified.timestamp_ns, b.timestamp);
        // (installation id, version, protocol version); status-go signs no protocol version.
        let got: Vec<(&str, u32, u32)> = verified
            .installations
            .iter()
            .map(|(id, p)| (id.as_str(), p.version, p.protocol_version))
            .collect();
        assert_eq!(got, versions, "{bytes_field}");
        // The signature is deterministic given the timestamp (RFC 6979): signing the decoded
        // bundle again gives the same bytes.
        let mut resigned = b.clone();
        bundle::sign_bundle(&mut resigned, &bob);
        assert_eq!(resigned.encode_to_vec(), bytes, "{bytes_field}: re-signing");
        // One changed byte of the signed material breaks it.
        let mut tampered = b.clone();
        tampered.timestamp += 1;
        assert!(bundle::verify_bundle(&tampered, 16).is_err());
    }
    let single = Bundle::decode(hex_of(&v, "bundle_hex").as_slice()).unwrap();
    let spk = &single.signed_pre_keys["bob-installation-1"];
    assert_eq!(
        hex::encode(&spk.signed_pre_key),
        v["signed_pre_key"].as_str().unwrap()
    );
    assert_eq!(spk.signed_pre_key, public_key(&fixed(0x44)).serialize());
}

#[test]
fn x3dh_steps_match() {
    let v = vector!("x3dh.json");
    let (ik_a, ek_a, ik_b, spk_b) = (fixed(0x11), fixed(0x22), fixed(0x33), fixed(0x44));
    assert_eq!(
        ecdh_x(&ik_a, &public_key(&spk_b)).to_vec(),
        hex_of(&v, "dh1_ecdh_aliceIK_bobSPK")
    );
    assert_eq!(
        ecdh_x(&ek_a, &public_key(&ik_b)).to_vec(),
        hex_of(&v, "dh2_ecdh_aliceEK_bobIK")
    );
    assert_eq!(
        ecdh_x(&ek_a, &public_key(&spk_b)).to_vec(),
        hex_of(&v, "dh3_ecdh_aliceEK_bobSPK")
    );
    let sk = hex_of(&v, "shared_secret");
    let active = x3dh::x3dh_active(&ik_a, &ek_a, &public_key(&ik_b), &public_key(&spk_b));
    let passive = x3dh::x3dh_passive(&ik_b, &spk_b, &public_key(&ik_a), &public_key(&ek_a));
    assert_eq!(active.to_vec(), sk);
    assert_eq!(passive.to_vec(), sk);
    assert_eq!(sk, hex_of(&vector!("double_ratchet.json"), "shared_secret"));
}

#[test]
fn double_ratchet_kdf_steps_match() {
    let v = vector!("double_ratchet.json");
    let k = &v["kdf"];
    let s = Suite::Status;
    let sk = key32(&hex_of(&v, "shared_secret"));
    let (spk_b, r_a, r_b) = (fixed(0x44), fixed(0x55), fixed(0x66));
    let dh_a = s
        .dh(&r_a.secret_bytes(), &public_key(&spk_b).serialize())
        .unwrap();
    let dh_b = s
        .dh(&spk_b.secret_bytes(), &public_key(&r_a).serialize())
        .unwrap();
    assert_eq!(dh_a.to_vec(), hex_of(k, "dh_alice_ratchet_bob_spk"));
    assert_eq!(dh_b.to_vec(), hex_of(k, "dh_bob_spk_alice_ratchet"));
    // Alice (NewWithRemoteKey): (RK, CKs) = KDF_RK(SK, DH(DHs, bob SPK)).
    let (rk1, cks_a) = s.kdf_rk(&sk, &dh_a);
    assert_eq!(rk1.to_vec(), hex_of(k, "rk1"));
    assert_eq!(cks_a.to_vec(), hex_of(k, "alice_send_chain_0"));
    // Bob, receiving: the same step from his side.
    let (rk_recv, ckr_b) = s.kdf_rk(&sk, &dh_b);
    assert_eq!(rk_recv.to_vec(), hex_of(k, "rk_bob_after_recv"));
    assert_eq!(ckr_b.to_vec(), hex_of(k, "bob_recv_chain_0"));
    // Bob, sending: a fresh ratchet key (0x66) against alice's.
    let dh_ba = s
        .dh(&r_b.secret_bytes(), &public_key(&r_a).serialize())
        .unwrap();
    assert_eq!(dh_ba.to_vec(), hex_of(k, "dh_bob_ratchet_alice_ratchet"));
    let (rk_send, cks_b) = s.kdf_rk(&rk_recv, &dh_ba);
    assert_eq!(rk_send.to_vec(), hex_of(k, "rk_bob_after_send"));
    assert_eq!(cks_b.to_vec(), hex_of(k, "bob_send_chain_0"));
    // Message keys: KDF_CK along each chain, and ENCRYPT with AD = header encoding.
    let messages = v["messages"].as_array().unwrap();
    let mut chain_a = cks_a;
    for m in &messages[..2] {
        let (next, mk) = s.kdf_ck(&chain_a);
        chain_a = next;
        assert_eq!(mk.to_vec(), hex_of(m, "message_key"));
    }
    let (_, mk3) = s.kdf_ck(&cks_b);
    assert_eq!(mk3.to_vec(), hex_of(&messages[2], "message_key"));
    for m in messages {
        let mk = key32(&hex_of(m, "message_key"));
        let ad = header_encoding(
            m["n"].as_u64().unwrap() as u32,
            m["pn"].as_u64().unwrap() as u32,
            &hex_of(m, "header_dh"),
        );
        assert_eq!(ad, hex_of(m, "header_encoding_ad"));
        let pt = m["plaintext"].as_str().unwrap().as_bytes();
        let ct = hex_of(m, "ciphertext_iv_ct_hmac");
        assert_eq!(s.encrypt(&mk, pt, &ad), ct, "ENCRYPT is deterministic");
        assert_eq!(s.decrypt(&mk, &ct, &ad).unwrap(), pt);
        let mut bad = ct.clone();
        bad[20] ^= 1;
        assert!(s.decrypt(&mk, &bad, &ad).is_err());
    }
}

#[test]
fn double_ratchet_sessions_reproduce_the_messages() {
    let v = vector!("double_ratchet.json");
    let messages = v["messages"].as_array().unwrap();
    let sk = key32(&hex_of(&v, "shared_secret"));
    let limits = SecurityConfig::default().ratchet_limits();
    let spk_b = fixed(0x44);
    // Alice: dr.NewWithRemoteKey(SK, bob SPK) with DHs = 0x55.
    let mut alice = RatchetState::new_initiator(
        Suite::Status,
        &sk,
        &public_key(&spk_b).serialize(),
        &mut Replay::of(&[&[0x55; 32]]),
    )
    .unwrap();
    // Bob: dr.New(SK, bob SPK); his next ratchet key is 0x66.
    let mut bob = RatchetState::new_responder(Suite::Status, &sk, &spk_b.secret_bytes()).unwrap();
    let mut bob_rng = Replay::of(&[&[0x66; 32]]);
    let header_of = |m: &Value| Header {
        dh: hex_of(m, "header_dh"),
        n: m["n"].as_u64().unwrap() as u32,
        pn: m["pn"].as_u64().unwrap() as u32,
    };
    for m in &messages[..2] {
        assert_eq!(m["from"], "alice");
        let pt = m["plaintext"].as_str().unwrap().as_bytes();
        let (header, ct) = alice.encrypt(pt, &[]).unwrap();
        assert_eq!(header, header_of(m));
        assert_eq!(ct, hex_of(m, "ciphertext_iv_ct_hmac"));
        let got = bob
            .decrypt(&limits, &header_of(m), &ct, &[], &mut bob_rng)
            .unwrap();
        assert_eq!(got, m["decrypted_by_peer"].as_str().unwrap().as_bytes());
    }
    let m = &messages[2];
    assert_eq!(m["from"], "bob");
    let (header, ct) = bob
        .encrypt(m["plaintext"].as_str().unwrap().as_bytes(), &[])
        .unwrap();
    assert_eq!(header, header_of(m));
    assert_eq!(ct, hex_of(m, "ciphertext_iv_ct_hmac"));
    // Alice's DH step on bob's new key draws her next ratchet key (0x57).
    let got = alice
        .decrypt(&limits, &header, &ct, &[], &mut Replay::of(&[&[0x57; 32]]))
        .unwrap();
    assert_eq!(got, m["decrypted_by_peer"].as_str().unwrap().as_bytes());
    // A replay of message 1 is refused (its key was used and deleted).
    assert!(bob
        .decrypt(
            &limits,
            &header_of(&messages[0]),
            &hex_of(&messages[0], "ciphertext_iv_ct_hmac"),
            &[],
            &mut Replay::of(&[]),
        )
        .is_err());
}

/// Bob's device as the vectors have it: identity 0x33, installation `bob-installation-1`,
/// signed prekey 0x44.
fn bob_service() -> SecurityService {
    let prekey = OwnPreKeyRecord {
        version: 1,
        secret: fixed(0x44).secret_bytes().to_vec(),
        x25519_secret: Vec::new(),
        created_at_ms: T0.0,
        expired_at_ms: 0,
    };
    SecurityService::restore(
        SecurityConfig::default(),
        fixed(0x33),
        "bob-installation-1",
        [Persist::OwnPreKey(prekey)],
    )
    .unwrap()
}

#[test]
fn protocol_messages_decode_decrypt_and_re_encode() {
    let v = vector!("protocol_message.json");
    let alice = public_key(&fixed(0x11));
    assert_eq!(
        hex::encode(alice.serialize_uncompressed()),
        v["sender_identity_public_uncompressed"].as_str().unwrap()
    );
    let expected = v["expected_plaintext"].as_str().unwrap().as_bytes();
    for (field, with_bundle) in [
        ("protocol_message_no_bundle_hex", false),
        ("protocol_message_with_alice_bundle_hex", true),
    ] {
        let bytes = hex_of(&v, field);
        let pm = ProtocolMessage::decode(bytes.as_slice()).expect(field);
        assert_eq!(pm.encode_to_vec(), bytes, "{field}: re-encoding");
        assert_eq!(pm.installation_id, "alice-installation-1");
        let dm = &pm.direct_message["bob-installation-1"];
        let x = dm.x3dh_header.as_ref().expect("X3DH header");
        let dr = dm.dr_header.as_ref().expect("DR header");
        let spk_b = public_key(&fixed(0x44)).serialize().to_vec();
        assert_eq!(x.key, public_key(&fixed(0x22)).serialize());
        assert_eq!((&x.id, &dr.id), (&spk_b, &spk_b));
        assert_eq!((dr.n, dr.pn), (0, 0));
        assert_eq!(dr.key, public_key(&fixed(0x55)).serialize());
        // status-go puts its bundle in the repeated `bundles` (3), not the legacy `bundle` (1).
        assert!(pm.bundle.is_none());
        assert_eq!(pm.bundles.len(), usize::from(with_bundle), "{field}");
        if let Some(b) = pm.bundles.first() {
            let verified = bundle::verify_bundle(b, 16).unwrap();
            assert_eq!(verified.identity, alice);
            assert_eq!(Some(b.timestamp), v["alice_bundle_timestamp_ns"].as_i64());
            let spk = &b.signed_pre_keys["alice-installation-1"].signed_pre_key;
            let expected_spk = SecretKey::from_byte_array(&key32(&hex_of(
                &v,
                "alice_bundle_signed_pre_key_private",
            )))
            .unwrap();
            assert_eq!(*spk, public_key(&expected_spk).serialize());
        }

        let mut bob = bob_service();
        let (persist, result) = bob.decrypt(T0, &mut Replay::of(&[&[0x66; 32]]), &alice, &pm);
        let Ok(Received::Direct(d)) = result else {
            panic!("{field}: {result:?}");
        };
        assert_eq!(d.plaintext, expected, "{field}");
        assert_eq!(d.installation_id, "alice-installation-1");
        assert!(d.forward_secrecy);
        assert_eq!(d.suite, Some(Suite::Status));
        // The bundle (protocol version 1) enables the negotiated topic secret.
        assert_eq!(
            d.negotiated_secret,
            with_bundle.then(|| ecdh_x(&fixed(0x33), &alice)),
            "{field}"
        );
        assert!(persist.iter().any(|p| matches!(p, Persist::Session(_))));
        assert_eq!(
            persist
                .iter()
                .any(|p| matches!(p, Persist::Installation(r) if r.installation_id == "alice-installation-1")),
            with_bundle
        );
        // The same message again is a replay.
        let (_, again) = bob.decrypt(T0, &mut Replay::of(&[]), &alice, &pm);
        assert!(
            matches!(again, Err(super::SecurityError::Replay)),
            "{field}: {again:?}"
        );
        let counted: Vec<(String, u64)> = bob
            .stats()
            .counters()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(
            counted,
            [
                ("decrypted".to_owned(), 1),
                ("rejected_replay".to_owned(), 1)
            ]
        );
        // A message from anyone else does not open.
        let mut bob = bob_service();
        let (_, other) = bob.decrypt(
            T0,
            &mut Replay::of(&[&[0x66; 32]]),
            &public_key(&fixed(0x12)),
            &pm,
        );
        assert!(other.is_err(), "{field}: wrong sender accepted");
    }
}

#[test]
fn dh_only_decrypts_and_re_encrypts() {
    let v = vector!("dh_only.json");
    let bob =
        SecretKey::from_byte_array(&key32(&hex_of(&v, "recipient_identity_private"))).unwrap();
    let eph = SecretKey::from_byte_array(&key32(&hex_of(&v, "ephemeral_private"))).unwrap();
    assert_eq!(
        compressed(&eph),
        v["ephemeral_public_compressed"].as_str().unwrap()
    );
    assert_eq!(
        ecdh_x(&eph, &public_key(&bob)).to_vec(),
        hex_of(&v, "shared_key")
    );
    let plaintext = v["plaintext"].as_str().unwrap().as_bytes();
    let payload = hex_of(&v, "payload_ct_tag_nonce");
    let eph_public = public_key(&eph).serialize();
    assert_eq!(
        x3dh::dh_decrypt(&bob, &eph_public, &payload).unwrap(),
        plaintext
    );
    // Same ephemeral key and the recorded nonce: the same bytes.
    let nonce = &payload[payload.len() - x3dh::GCM_NONCE_BYTES..];
    let (key, again) = x3dh::dh_encrypt(
        &mut Replay::of(&[&eph.secret_bytes(), nonce]),
        &public_key(&bob),
        plaintext,
    );
    assert_eq!((key, again), (eph_public, payload.clone()));

    let bytes = hex_of(&v, "protocol_message_hex");
    let pm = ProtocolMessage::decode(bytes.as_slice()).unwrap();
    assert_eq!(pm.encode_to_vec(), bytes, "re-encoding");
    let dm = &pm.direct_message[super::NO_INSTALLATION_ID];
    assert_eq!(dm.payload, payload);
    assert_eq!(dm.dh_header.as_ref().unwrap().key, eph_public);
    let alice = public_key(&fixed(0x11));
    let mut bob = bob_service();
    let (_, result) = bob.decrypt(T0, &mut Replay::of(&[]), &alice, &pm);
    let Ok(Received::Direct(d)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(bob.stats().decrypted_dh_only, 1);
    assert_eq!(d.plaintext, plaintext);
    assert!(!d.forward_secrecy, "DH-only is flagged as such");
    assert_eq!(d.suite, None);
    // Tampering with the ciphertext is detected.
    let mut bad = pm.clone();
    if let Some(dm) = bad.direct_message.get_mut(super::NO_INSTALLATION_ID) {
        dm.payload[0] ^= 1;
    }
    let mut bob = bob_service();
    let (_, result) = bob.decrypt(T0, &mut Replay::of(&[]), &alice, &bad);
    assert_eq!(result, Err(super::SecurityError::Tampered));
    assert_eq!(bob.stats().rejected_tampered, 1);
    assert_eq!(bob.stats().decrypted_dh_only, 0);
}

#[test]
fn replay_rng_hands_out_exactly_its_bytes() {
    let mut r = Replay::of(&[&[1, 2], &[3]]);
    let mut b = [0u8; 3];
    r.fill_bytes(&mut b);
    assert_eq!(b, [1, 2, 3]);
    assert!(std::panic::catch_unwind(move || r.next_u32()).is_err());
}

// The vectors' public keys are the fixed private keys' (a typo in a key would make every test
// above fail for the wrong reason).
#[test]
fn vector_public_keys_are_consistent() {
    let keys = vector!("keys.json");
    let bundle_v = vector!("bundle.json");
    assert_eq!(
        bundle_v["identity"].as_str(),
        keys["bob_identity_public_compressed"].as_str()
    );
    let pk = PublicKey::from_slice(&hex_of(&keys, "bob_signed_prekey_public_compressed")).unwrap();
    assert_eq!(pk, public_key(&fixed(0x44)));
}
