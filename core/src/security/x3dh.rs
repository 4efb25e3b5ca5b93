//! Key agreement: status-go's X3DH on secp256k1, hush's modern X3DH variant, and the DH-only
//! path used when no bundle is known (security.md §2–§3; status-go v0.38 `x3dh.go`,
//! `encryptor.go` `encryptWithDH`, eth-node `EncryptSymmetric`).
//!
//! Contract:
//! - Status X3DH: `SK = keccak256(ECDH(IK_A, SPK_B) ‖ ECDH(EK_A, IK_B) ‖ ECDH(EK_A, SPK_B))`,
//!   each ECDH the 32-byte X coordinate; no one-time prekeys, no KDF beyond keccak.
//! - Modern X3DH: the same three secp256k1 DH outputs (they authenticate both identities) plus
//!   `DH4 = X25519(EK_A', XSPK_B)`, `SK = HKDF-SHA256(salt = 0³², IKM = DH1‖DH2‖DH3‖DH4,
//!   info = "hush/modern/v1/x3dh")`.
//! - DH-only: `key = ECDH(E, IK_B)`, payload `AES-256-GCM(key, nonce, pt) ‖ nonce(12)` with a
//!   random non-zero nonce and no AAD. It has **no forward secrecy**; callers get it flagged.
//! - Decryption is total: bad lengths, bad points or tags give a [`SecurityError`].

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use secp256k1::{PublicKey, SecretKey};
use sha2::Sha256;

use super::SecurityError;
use crate::ecies::{ecdh_x, public_key, random_secret_key};
use crate::keccak::keccak256_concat;

/// AES-GCM nonce length of the DH-only path (go `gcm.NonceSize()`).
pub const GCM_NONCE_BYTES: usize = 12;
/// AES-GCM tag length.
pub const GCM_TAG_BYTES: usize = 16;
/// HKDF info of the modern X3DH.
pub const MODERN_X3DH_INFO: &[u8] = b"hush/modern/v1/x3dh";

/// Status X3DH, sender side (status-go `x3dhActive`).
pub fn x3dh_active(
    identity: &SecretKey,
    ephemeral: &SecretKey,
    their_identity: &PublicKey,
    their_signed_pre_key: &PublicKey,
) -> [u8; 32] {
    let dh1 = ecdh_x(identity, their_signed_pre_key);
    let dh2 = ecdh_x(ephemeral, their_identity);
    let dh3 = ecdh_x(ephemeral, their_signed_pre_key);
    keccak256_concat(&[&dh1, &dh2, &dh3])
}

/// Status X3DH, receiver side (status-go `x3dhPassive`).
pub fn x3dh_passive(
    identity: &SecretKey,
    signed_pre_key: &SecretKey,
    their_identity: &PublicKey,
    their_ephemeral: &PublicKey,
) -> [u8; 32] {
    let dh1 = ecdh_x(signed_pre_key, their_identity);
    let dh2 = ecdh_x(identity, their_ephemeral);
    let dh3 = ecdh_x(signed_pre_key, their_ephemeral);
    keccak256_concat(&[&dh1, &dh2, &dh3])
}

fn x25519(secret: &[u8; 32], public: &[u8]) -> Result<[u8; 32], SecurityError> {
    super::Suite::Modern
        .dh(secret, public)
        .map_err(|_| SecurityError::InvalidKey)
}

fn modern_sk(dh1: [u8; 32], dh2: [u8; 32], dh3: [u8; 32], dh4: [u8; 32]) -> [u8; 32] {
    let mut ikm = [0u8; 128];
    ikm[..32].copy_from_slice(&dh1);
    ikm[32..64].copy_from_slice(&dh2);
    ikm[64..96].copy_from_slice(&dh3);
    ikm[96..].copy_from_slice(&dh4);
    let mut sk = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), &ikm)
        .expand(MODERN_X3DH_INFO, &mut sk)
        .expect("32 bytes is within HKDF-SHA256's limit");
    sk
}

/// Modern X3DH, sender side.
pub fn modern_x3dh_active(
    identity: &SecretKey,
    ephemeral: &SecretKey,
    x25519_ephemeral: &[u8; 32],
    their_identity: &PublicKey,
    their_signed_pre_key: &PublicKey,
    their_x25519_pre_key: &[u8; 32],
) -> Result<[u8; 32], SecurityError> {
    Ok(modern_sk(
        ecdh_x(identity, their_signed_pre_key),
        ecdh_x(ephemeral, their_identity),
        ecdh_x(ephemeral, their_signed_pre_key),
        x25519(x25519_ephemeral, their_x25519_pre_key)?,
    ))
}

/// Modern X3DH, receiver side.
pub fn modern_x3dh_passive(
    identity: &SecretKey,
    signed_pre_key: &SecretKey,
    x25519_pre_key: &[u8; 32],
    their_identity: &PublicKey,
    their_ephemeral: &PublicKey,
    their_x25519_ephemeral: &[u8],
) -> Result<[u8; 32], SecurityError> {
    Ok(modern_sk(
        ecdh_x(signed_pre_key, their_identity),
        ecdh_x(identity, their_ephemeral),
        ecdh_x(signed_pre_key, their_ephemeral),
        x25519(x25519_pre_key, their_x25519_ephemeral)?,
    ))
}

/// DH-only encryption to `recipient` (status-go `encryptWithDH`): returns
/// `(C(E) 33 bytes, ciphertext ‖ tag ‖ nonce)`.
pub fn dh_encrypt(
    rng: &mut (impl RngCore + CryptoRng),
    recipient: &PublicKey,
    plaintext: &[u8],
) -> ([u8; 33], Vec<u8>) {
    let ephemeral = random_secret_key(rng);
    let key = ecdh_x(&ephemeral, recipient);
    let mut nonce = [0u8; GCM_NONCE_BYTES];
    while nonce == [0u8; GCM_NONCE_BYTES] {
        rng.fill_bytes(&mut nonce);
    }
    let mut out = Aes256Gcm::new(&key.into())
        .encrypt(&nonce.into(), plaintext)
        .expect("AES-GCM encryption cannot fail below 64 GiB");
    out.extend_from_slice(&nonce);
    (public_key(&ephemeral).serialize(), out)
}

/// DH-only decryption with our identity key (status-go `DecryptWithDH`).
pub fn dh_decrypt(
    identity: &SecretKey,
    ephemeral: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>, SecurityError> {
    let their = PublicKey::from_slice(ephemeral).map_err(|_| SecurityError::InvalidKey)?;
    let key = ecdh_x(identity, &their);
    if payload.len() < GCM_NONCE_BYTES + GCM_TAG_BYTES {
        return Err(SecurityError::Tampered);
    }
    let (ct, nonce) = payload.split_at(payload.len() - GCM_NONCE_BYTES);
    let nonce: [u8; GCM_NONCE_BYTES] = nonce.try_into().map_err(|_| SecurityError::Tampered)?;
    Aes256Gcm::new(&key.into())
        .decrypt(&nonce.into(), ct)
        .map_err(|_| SecurityError::Tampered)
}
