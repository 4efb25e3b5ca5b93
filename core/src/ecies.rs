//! go-ethereum ECIES on secp256k1, as RLPx (EIP-8 auth/ack) and Whisper asymmetric envelopes
//! use it (rlpx.md §1–§2, [G-ecies] `crypto/ecies/ecies.go`).
//!
//! Contract:
//! - Parameters are geth's `ECIES_AES128_SHA256`: ECDH X coordinate `z`, concat-KDF with
//!   SHA-256 (`K = SHA256(00000001 ‖ z ‖ s1)`, one block), `Ke = K[0..16]` for AES-128-CTR,
//!   `Km = SHA256(K[16..32])` for HMAC-SHA256 over `IV ‖ c ‖ s2`.
//! - Wire form: `0x04 ‖ R.X ‖ R.Y ‖ IV(16) ‖ c ‖ tag(32)`, so [`OVERHEAD_BYTES`] = 113.
//! - `s1` (KDF shared info) is empty everywhere in the stack, so the API fixes it to empty;
//!   `s2` (the "shared MAC data") is an argument: RLPx EIP-8 passes the 2-byte size prefix.
//! - Pure: randomness is an argument. [`encrypt_with`] takes the ephemeral key and IV
//!   explicitly so test vectors can be reproduced.
//! - [`decrypt`] is total: any byte string gives a plaintext or an [`EciesError`].

use std::sync::OnceLock;

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use secp256k1::{All, PublicKey, Secp256k1, SecretKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Length of an uncompressed SEC1 public key (`0x04 ‖ X ‖ Y`).
pub const UNCOMPRESSED_PUBKEY_BYTES: usize = 65;
/// Length of a public key on the devp2p wire: `X ‖ Y` without the `0x04` tag (rlpx.md §1).
pub const WIRE_PUBKEY_BYTES: usize = 64;
/// AES block and IV size (AES-128-CTR, geth `ECIES_AES128_SHA256.BlockSize`).
pub const IV_BYTES: usize = 16;
/// HMAC-SHA256 tag length.
pub const TAG_BYTES: usize = 32;
/// Bytes ECIES adds to a plaintext: ephemeral key 65 + IV 16 + tag 32 = 113 (rlpx.md §2).
pub const OVERHEAD_BYTES: usize = UNCOMPRESSED_PUBKEY_BYTES + IV_BYTES + TAG_BYTES;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha256 = Hmac<Sha256>;

/// Why ECIES decryption or key parsing failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EciesError {
    /// The ciphertext is shorter than [`OVERHEAD_BYTES`] (geth `ErrInvalidMessage`).
    #[error("ecies: ciphertext of {len} bytes is shorter than the {min}-byte overhead")]
    TooShort {
        /// Length received.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// The ephemeral key is not an uncompressed point on the curve (geth
    /// `ErrInvalidPublicKey`).
    #[error("ecies: invalid public key")]
    InvalidPublicKey,
    /// The HMAC tag does not match (geth `ErrInvalidMessage`).
    #[error("ecies: invalid message (bad tag)")]
    BadTag,
}

/// The process-wide secp256k1 context (signing + verification). Creating one per call would
/// allocate every time; the context holds no secret state that affects outputs.
///
/// Built with `gen_new`, not `new`: with the `rand` feature, `Secp256k1::new` blinds the
/// context from `thread_rng`, an OS random source core must not touch. libsecp256k1's signing
/// and ECDH are constant-time without the blinding, which is defence in depth only.
pub fn secp() -> &'static Secp256k1<All> {
    static CTX: OnceLock<Secp256k1<All>> = OnceLock::new();
    CTX.get_or_init(Secp256k1::gen_new)
}

/// Draws a uniformly random valid secret key from `rng` (rejection sampling; a 32-byte string
/// is invalid with probability below 2^-127).
pub fn random_secret_key(rng: &mut (impl RngCore + CryptoRng)) -> SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(key) = SecretKey::from_byte_array(&bytes) {
            return key;
        }
    }
}

/// The public key of `secret`.
pub fn public_key(secret: &SecretKey) -> PublicKey {
    PublicKey::from_secret_key(secp(), secret)
}

/// ECDH as geth's `GenerateShared(pub, 16, 16)`: the 32-byte big-endian X coordinate of
/// `secret · public` (rlpx.md §1). Both keys are valid by construction, so the product is
/// never the point at infinity.
pub fn ecdh_x(secret: &SecretKey, public: &PublicKey) -> [u8; 32] {
    let point = secp256k1::ecdh::shared_secret_point(public, secret);
    let mut x = [0u8; 32];
    x.copy_from_slice(&point[..32]);
    x
}

/// The 64-byte devp2p form `X ‖ Y` of a public key.
pub fn pubkey_to_wire(key: &PublicKey) -> [u8; WIRE_PUBKEY_BYTES] {
    let full = key.serialize_uncompressed();
    let mut out = [0u8; WIRE_PUBKEY_BYTES];
    out.copy_from_slice(&full[1..]);
    out
}

/// Parses a public key given as 64 bytes `X ‖ Y` or 65 bytes `0x04 ‖ X ‖ Y` (geth
/// `importPublicKey`; compressed and hybrid encodings are rejected as geth does).
pub fn pubkey_from_wire(bytes: &[u8]) -> Result<PublicKey, EciesError> {
    let mut full = [0u8; UNCOMPRESSED_PUBKEY_BYTES];
    match bytes.len() {
        WIRE_PUBKEY_BYTES => {
            full[0] = 0x04;
            full[1..].copy_from_slice(bytes);
        }
        UNCOMPRESSED_PUBKEY_BYTES if bytes.first() == Some(&0x04) => full.copy_from_slice(bytes),
        _ => return Err(EciesError::InvalidPublicKey),
    }
    PublicKey::from_slice(&full).map_err(|_| EciesError::InvalidPublicKey)
}

/// `(Ke, Km)` from the shared X coordinate: concat-KDF (one SHA-256 block, counter 1, empty
/// s1), then `Km = SHA256(K[16..32])` (rlpx.md §2 steps 3–4).
fn derive_keys(z: &[u8; 32]) -> ([u8; 16], [u8; 32]) {
    let k: [u8; 32] = Sha256::new()
        .chain_update(1u32.to_be_bytes())
        .chain_update(z)
        .finalize()
        .into();
    let mut ke = [0u8; 16];
    ke.copy_from_slice(&k[..16]);
    let km: [u8; 32] = Sha256::digest(&k[16..]).into();
    (ke, km)
}

fn tag(km: &[u8; 32], iv_and_ct: &[u8], shared_mac_data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; 32 bytes can never fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(km).expect("HMAC takes any key length");
    mac.update(iv_and_ct);
    mac.update(shared_mac_data);
    mac
}

/// Encrypts `plain` to `remote` with a fresh ephemeral key and IV drawn from `rng`.
pub fn encrypt(
    rng: &mut (impl RngCore + CryptoRng),
    remote: &PublicKey,
    plain: &[u8],
    shared_mac_data: &[u8],
) -> Vec<u8> {
    let ephemeral = random_secret_key(rng);
    let mut iv = [0u8; IV_BYTES];
    rng.fill_bytes(&mut iv);
    encrypt_with(&ephemeral, iv, remote, plain, shared_mac_data)
}

/// Encrypts with an explicit ephemeral key and IV (for vectors and deterministic tests).
pub fn encrypt_with(
    ephemeral: &SecretKey,
    iv: [u8; IV_BYTES],
    remote: &PublicKey,
    plain: &[u8],
    shared_mac_data: &[u8],
) -> Vec<u8> {
    let (ke, km) = derive_keys(&ecdh_x(ephemeral, remote));
    let mut out = Vec::with_capacity(plain.len() + OVERHEAD_BYTES);
    out.extend_from_slice(&public_key(ephemeral).serialize_uncompressed());
    out.extend_from_slice(&iv);
    out.extend_from_slice(plain);
    let mut cipher = Aes128Ctr::new(&ke.into(), &iv.into());
    cipher.apply_keystream(&mut out[UNCOMPRESSED_PUBKEY_BYTES + IV_BYTES..]);
    let d = tag(&km, &out[UNCOMPRESSED_PUBKEY_BYTES..], shared_mac_data)
        .finalize()
        .into_bytes();
    out.extend_from_slice(&d);
    out
}

/// Decrypts an ECIES message addressed to `secret`, checking the tag over `IV ‖ c ‖ s2`
/// (constant-time comparison) before decrypting.
pub fn decrypt(
    secret: &SecretKey,
    ciphertext: &[u8],
    shared_mac_data: &[u8],
) -> Result<Vec<u8>, EciesError> {
    if ciphertext.len() < OVERHEAD_BYTES {
        return Err(EciesError::TooShort {
            len: ciphertext.len(),
            min: OVERHEAD_BYTES,
        });
    }
    let (r, rest) = ciphertext.split_at(UNCOMPRESSED_PUBKEY_BYTES);
    // geth accepts a leading 2, 3 or 4 but then parses 65 bytes as an uncompressed point, so
    // only 0x04 can succeed; `pubkey_from_wire` enforces exactly that.
    let remote = pubkey_from_wire(r)?;
    let (body, d) = rest.split_at(rest.len() - TAG_BYTES);
    let (ke, km) = derive_keys(&ecdh_x(secret, &remote));
    tag(&km, body, shared_mac_data)
        .verify_slice(d)
        .map_err(|_| EciesError::BadTag)?;
    let (iv, ct) = body.split_at(IV_BYTES);
    let mut plain = ct.to_vec();
    let mut iv_arr = [0u8; IV_BYTES];
    iv_arr.copy_from_slice(iv);
    let mut cipher = Aes128Ctr::new(&ke.into(), &iv_arr.into());
    cipher.apply_keystream(&mut plain);
    Ok(plain)
}

#[cfg(test)]
mod tests;
