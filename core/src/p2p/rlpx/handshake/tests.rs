use super::*;
use crate::ecies::{pubkey_to_wire, public_key};
use crate::rng::{rng_from_seed, seed_from_u64};
use proptest::prelude::*;
use serde_json::Value;

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/vectors/rlpx_eip8_handshake.json"
));

struct V {
    json: Value,
}

impl V {
    fn load() -> V {
        V {
            json: serde_json::from_str(VECTORS).unwrap(),
        }
    }
    fn hex(&self, key: &str) -> Vec<u8> {
        hex::decode(self.json[key].as_str().unwrap()).unwrap()
    }
    fn key(&self, key: &str) -> SecretKey {
        SecretKey::from_slice(&self.hex(key)).unwrap()
    }
    fn nonce(&self, key: &str) -> [u8; 32] {
        self.hex(key).try_into().unwrap()
    }
    fn packets(&self, kind: &str) -> Vec<(String, Vec<u8>, u64, Option<usize>)> {
        self.json[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    hex::decode(p["packet"].as_str().unwrap()).unwrap(),
                    p["want_version"].as_u64().unwrap(),
                    p["want_extra_elements"].as_array().map(|a| a.len()),
                )
            })
            .collect()
    }
    fn derived(&self, key: &str) -> String {
        self.json["derived_locally"][key]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn digest_after(mut k: Keccak256, data: &[u8]) -> String {
    k.update(data);
    hex::encode(k.finalize())
}

#[test]
fn responder_decodes_every_auth_vector() {
    let v = V::load();
    let b = Responder::with_ephemeral(
        v.key("static_key_B"),
        v.key("ephemeral_key_B"),
        v.nonce("nonce_B"),
    );
    let pub_a = public_key(&v.key("static_key_A"));
    let eph_a = public_key(&v.key("ephemeral_key_A"));
    for (name, packet, version, extra) in v.packets("auth") {
        let (auth, format, used) = b.read_auth(&packet).unwrap().unwrap();
        assert_eq!(used, packet.len(), "{name}");
        assert_eq!(
            format,
            if extra.is_none() {
                PacketFormat::Legacy
            } else {
                PacketFormat::Eip8
            }
        );
        assert_eq!(auth.version, version, "{name}");
        assert_eq!(auth.extra_elements, extra.unwrap_or(0), "{name}");
        assert_eq!(auth.initiator_pubkey, pub_a, "{name}");
        assert_eq!(auth.nonce, v.nonce("nonce_A"), "{name}");
        assert_eq!(auth.signature.to_vec(), v.hex("auth_signature"), "{name}");
        assert_eq!(b.recover_ephemeral(&auth).unwrap(), eph_a, "{name}");
        // Every strict prefix asks for more bytes (no error, no false success).
        for cut in [0, 1, 100, LEGACY_AUTH_PACKET_BYTES - 1] {
            assert_eq!(
                b.read_auth(&packet[..cut]).unwrap(),
                None,
                "{name} cut {cut}"
            );
        }
        if format == PacketFormat::Eip8 {
            assert_eq!(
                b.read_auth(&packet[..packet.len() - 1]).unwrap(),
                None,
                "{name}"
            );
        }
    }
}

#[test]
fn initiator_decodes_every_ack_vector() {
    let v = V::load();
    let mut rng = rng_from_seed(seed_from_u64(7));
    let a = Initiator::with_ephemeral(
        &mut rng,
        v.key("static_key_A"),
        public_key(&v.key("static_key_B")),
        v.key("ephemeral_key_A"),
        v.nonce("nonce_A"),
    );
    let eph_b = public_key(&v.key("ephemeral_key_B"));
    for (name, packet, version, extra) in v.packets("ack") {
        let (ack, format, used) = a.read_ack(&packet).unwrap().unwrap();
        assert_eq!(used, packet.len(), "{name}");
        assert_eq!(
            format,
            if extra.is_none() {
                PacketFormat::Legacy
            } else {
                PacketFormat::Eip8
            }
        );
        assert_eq!(ack.version, version, "{name}");
        assert_eq!(ack.extra_elements, extra.unwrap_or(0), "{name}");
        assert_eq!(ack.ephemeral_pubkey, eph_b, "{name}");
        assert_eq!(ack.nonce, v.nonce("nonce_B"), "{name}");
    }
}

#[test]
fn initiator_reproduces_the_auth_body_and_signature() {
    let v = V::load();
    let mut rng = rng_from_seed(seed_from_u64(8));
    let b_key = v.key("static_key_B");
    let a = Initiator::with_ephemeral(
        &mut rng,
        v.key("static_key_A"),
        public_key(&b_key),
        v.key("ephemeral_key_A"),
        v.nonce("nonce_A"),
    );
    // Our EIP-8 auth decrypts to the same body as the vector's Auth2 (minus padding), except
    // the signature: libsecp256k1 signs with an RFC 6979 nonce, the EIP-8 vector was made
    // with another k. Both must recover the same ephemeral key.
    let b = Responder::with_ephemeral(b_key, v.key("ephemeral_key_B"), v.nonce("nonce_B"));
    let (ours, format, used) = b.read_auth(a.auth_packet()).unwrap().unwrap();
    assert_eq!(format, PacketFormat::Eip8);
    assert_eq!(used, a.auth_packet().len());
    let auth2 = &v.packets("auth")[1].1;
    let (theirs, _, _) = b.read_auth(auth2).unwrap().unwrap();
    assert_eq!(&ours, a.auth_message());
    assert_eq!(
        (
            ours.initiator_pubkey,
            ours.nonce,
            ours.version,
            ours.extra_elements
        ),
        (
            theirs.initiator_pubkey,
            theirs.nonce,
            theirs.version,
            theirs.extra_elements
        )
    );
    let eph_a = public_key(&v.key("ephemeral_key_A"));
    assert_eq!(b.recover_ephemeral(&ours).unwrap(), eph_a);
    assert_eq!(b.recover_ephemeral(&theirs).unwrap(), eph_a);
    assert!(ours.signature[64] <= 1, "V must be 0 or 1");
    // geth padding: 100..=299 bytes on top of the body and ECIES overhead.
    let body_len = encode_auth_body(&ours).len();
    let pad = a.auth_packet().len() - 2 - ecies::OVERHEAD_BYTES - body_len;
    assert!((100..300).contains(&pad), "padding {pad}");
    assert_eq!(
        hex::encode(pubkey_to_wire(&public_key(&v.key("static_key_A")))),
        v.derived("pubkey_A")
    );
}

#[test]
fn secrets_for_every_auth_ack_combination() {
    let v = V::load();
    let key_a = v.key("static_key_A");
    let key_b = v.key("static_key_B");
    let eph_a = v.key("ephemeral_key_A");
    let eph_b = v.key("ephemeral_key_B");
    let (na, nb) = (v.nonce("nonce_A"), v.nonce("nonce_B"));
    let expected = &v.json["expected_secrets_at_B_for_Auth2_Ack2"];
    let want_aes = expected["aes_secret"].as_str().unwrap();
    let want_mac = expected["mac_secret"].as_str().unwrap();
    for (auth_name, auth_packet, _, _) in v.packets("auth") {
        for (ack_name, ack_packet, _, _) in v.packets("ack") {
            let responder = Responder::with_ephemeral(key_b, eph_b, nb);
            let (auth, _, _) = responder.read_auth(&auth_packet).unwrap().unwrap();
            let at_b = responder.finish(&auth, &auth_packet, &ack_packet).unwrap();
            let at_a = derive_secrets(
                true,
                &eph_a,
                &public_key(&eph_b),
                &na,
                &nb,
                &auth_packet,
                &ack_packet,
                public_key(&key_b),
            );
            let combo = format!("{auth_name}/{ack_name}");
            assert_eq!(hex::encode(at_b.aes), want_aes, "{combo}");
            assert_eq!(hex::encode(at_b.mac), want_mac, "{combo}");
            assert_eq!(at_a.aes, at_b.aes, "{combo}");
            assert_eq!(at_a.mac, at_b.mac, "{combo}");
            assert_eq!(at_b.remote_id, public_key(&key_a), "{combo}");
            assert_eq!(at_a.remote_id, public_key(&key_b), "{combo}");
            assert_eq!(
                digest_after(at_a.egress_mac.clone(), b"foo"),
                digest_after(at_b.ingress_mac.clone(), b"foo"),
                "{combo}"
            );
            assert_eq!(
                digest_after(at_a.ingress_mac.clone(), b"foo"),
                digest_after(at_b.egress_mac.clone(), b"foo"),
                "{combo}"
            );
            if auth_name == "Auth2" && ack_name == "Ack2" {
                let want = expected["ingress_mac_after_update_foo"].as_str().unwrap();
                assert_eq!(digest_after(at_b.ingress_mac.clone(), b"foo"), want);
                assert_eq!(
                    digest_after(at_a.egress_mac.clone(), b"foo"),
                    v.derived("A_egress_mac_after_update_foo")
                );
                assert_eq!(
                    digest_after(at_a.ingress_mac.clone(), b"foo"),
                    v.derived("A_ingress_mac_after_update_foo")
                );
            }
        }
    }
}

#[test]
fn full_handshake_both_formats() {
    let mut rng = rng_from_seed(seed_from_u64(9));
    let key_a = ecies::random_secret_key(&mut rng);
    let key_b = ecies::random_secret_key(&mut rng);
    let a = Initiator::new(&mut rng, key_a, public_key(&key_b));
    let b = Responder::new(&mut rng, key_b);
    let auth_packet = a.auth_packet().to_vec();
    let (auth, format, _) = b.read_auth(&auth_packet).unwrap().unwrap();
    assert_eq!(format, PacketFormat::Eip8);
    let ack_packet = b.ack_packet(&mut rng, &auth, format);
    let (ack, ack_format, used) = a.read_ack(&ack_packet).unwrap().unwrap();
    assert_eq!((ack_format, used), (PacketFormat::Eip8, ack_packet.len()));
    let sa = a.finish(&ack, &ack_packet);
    let sb = b.finish(&auth, &auth_packet, &ack_packet).unwrap();
    assert_eq!((sa.aes, sa.mac), (sb.aes, sb.mac));

    // A legacy auth (vector Auth1) gets a legacy 210-byte ack.
    let v = V::load();
    let b = Responder::new(&mut rng, v.key("static_key_B"));
    let auth1 = &v.packets("auth")[0].1;
    let (auth, format, _) = b.read_auth(auth1).unwrap().unwrap();
    assert_eq!(format, PacketFormat::Legacy);
    let ack = b.ack_packet(&mut rng, &auth, format);
    assert_eq!(ack.len(), LEGACY_ACK_PACKET_BYTES);
    let a = Initiator::new(
        &mut rng,
        v.key("static_key_A"),
        public_key(&v.key("static_key_B")),
    );
    let (decoded, f, _) = a.read_ack(&ack).unwrap().unwrap();
    assert_eq!(f, PacketFormat::Legacy);
    assert_eq!(decoded.ephemeral_pubkey, public_key(&b.ephemeral));
}

#[test]
fn size_underflow_and_wrong_key() {
    let v = V::load();
    let b = Responder::with_ephemeral(
        v.key("static_key_B"),
        v.key("ephemeral_key_B"),
        v.nonce("nonce_B"),
    );
    let mut packet = v.packets("auth")[1].1.clone();
    packet[0] = 0;
    packet[1] = 10;
    assert_eq!(
        b.read_auth(&packet),
        Err(HandshakeError::SizeUnderflow {
            size: 10,
            min: LEGACY_AUTH_PACKET_BYTES
        })
    );
    let wrong = Responder::with_ephemeral(
        v.key("static_key_A"),
        v.key("ephemeral_key_B"),
        v.nonce("nonce_B"),
    );
    assert_eq!(
        wrong.read_auth(&v.packets("auth")[1].1),
        Err(HandshakeError::Ecies(EciesError::BadTag))
    );
}

proptest! {
    #[test]
    fn readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let key = SecretKey::from_slice(&[0x11; 32]).unwrap();
        let b = Responder::with_ephemeral(key, key, [0; 32]);
        let _ = b.read_auth(&bytes);
        let mut rng = rng_from_seed(seed_from_u64(1));
        let a = Initiator::new(&mut rng, key, public_key(&SecretKey::from_slice(&[0x22; 32]).unwrap()));
        let _ = a.read_ack(&bytes);
        let _ = decode_auth(&bytes, PacketFormat::Eip8);
        let _ = decode_auth(&bytes, PacketFormat::Legacy);
        let _ = decode_ack(&bytes, PacketFormat::Eip8);
        let _ = decode_ack(&bytes, PacketFormat::Legacy);
    }

    #[test]
    fn truncated_vectors_never_panic(which in 0usize..3, cut in 0usize..500) {
        let v = V::load();
        let b = Responder::with_ephemeral(v.key("static_key_B"), v.key("ephemeral_key_B"), v.nonce("nonce_B"));
        let packet = &v.packets("auth")[which].1;
        let cut = cut.min(packet.len());
        let r = b.read_auth(&packet[..cut]);
        if cut < packet.len() { prop_assert!(matches!(r, Ok(None) | Err(_))); }
        else { prop_assert!(matches!(r, Ok(Some(_)))); }
    }
}

#[test]
fn legacy_auth_from_the_initiator_matches_the_vector_layout() {
    let v = V::load();
    let mut rng = rng_from_seed(seed_from_u64(10));
    let b_key = v.key("static_key_B");
    let a = Initiator::with_ephemeral_format(
        &mut rng,
        v.key("static_key_A"),
        public_key(&b_key),
        v.key("ephemeral_key_A"),
        v.nonce("nonce_A"),
        PacketFormat::Legacy,
    );
    assert_eq!(a.auth_packet().len(), LEGACY_AUTH_PACKET_BYTES);
    // Same plaintext as the vector's Auth1 after the signature (whose k differs, see above):
    // keccak(ephemeral) ‖ static pubkey ‖ nonce ‖ 0x00.
    let ours = ecies::decrypt(&b_key, a.auth_packet(), &[]).unwrap();
    let theirs = ecies::decrypt(&b_key, &v.packets("auth")[0].1, &[]).unwrap();
    assert_eq!(ours.len(), LEGACY_AUTH_PLAIN_BYTES);
    assert_eq!(ours[SIGNATURE_BYTES..], theirs[SIGNATURE_BYTES..]);

    // The responder sees a legacy auth, answers with a legacy ack, and the secrets agree.
    let b = Responder::with_ephemeral(b_key, v.key("ephemeral_key_B"), v.nonce("nonce_B"));
    let (auth, format, used) = b.read_auth(a.auth_packet()).unwrap().unwrap();
    assert_eq!(
        (format, used),
        (PacketFormat::Legacy, LEGACY_AUTH_PACKET_BYTES)
    );
    assert_eq!(
        b.recover_ephemeral(&auth).unwrap(),
        public_key(&v.key("ephemeral_key_A"))
    );
    let ack_packet = b.ack_packet(&mut rng, &auth, format);
    assert_eq!(ack_packet.len(), LEGACY_ACK_PACKET_BYTES);
    let (ack, ack_format, _) = a.read_ack(&ack_packet).unwrap().unwrap();
    assert_eq!(ack_format, PacketFormat::Legacy);
    let auth_packet = a.auth_packet().to_vec();
    let sa = a.finish(&ack, &ack_packet);
    let sb = b.finish(&auth, &auth_packet, &ack_packet).unwrap();
    assert_eq!((sa.aes, sa.mac), (sb.aes, sb.mac));
    assert_eq!(
        digest_after(sa.egress_mac, b"x"),
        digest_after(sb.ingress_mac, b"x")
    );
}
