//! Ethereum keystore v3 JSON ("Web3 Secret Storage Definition", as go-ethereum's
//! `accounts/keystore/passphrase.go` reads and writes it) for the node identity key.
//!
//! Contract:
//! - [`decrypt_key`] accepts any v3 file geth accepts: cipher `aes-128-ctr`, KDF `scrypt` or
//!   `pbkdf2` (`prf` = `hmac-sha256`), `crypto` or `Crypto`, plaintext keys shorter than
//!   32 bytes (left-padded, as geth's `ToECDSAUnsafe`). It checks the MAC
//!   (`keccak256(derived_key[16..32] ‖ ciphertext)`) before decrypting, so a wrong passphrase
//!   is [`KeystoreError::MacMismatch`]. If the file names an `address`, it must be the key's.
//!   KDF parameters are bounded ([`MAX_SCRYPT_MEMORY_BYTES`], [`MAX_PBKDF2_ROUNDS`], ...)
//!   so a hostile file cannot make hush allocate or spin without limit. Total: any bytes give
//!   a key or a typed error, never a panic.
//! - [`encrypt_key`] writes geth's layout with scrypt ([`STANDARD_SCRYPT`] or geth's
//!   `--lightkdf` [`LIGHT_SCRYPT`]), AES-128-CTR, a random 32-byte salt, 16-byte IV and v4
//!   UUID, and the lowercase `address` without `0x`.
//! - The address is `keccak256(uncompressed pubkey without the 04 tag)[12..32]`.
//!
//! The `hush key` subcommand lives in [`cli`].

use aes::cipher::{KeyIvInit, StreamCipher};
use hush_core::keccak::{keccak256, keccak256_concat};
use rand_core::{CryptoRng, RngCore};
use secp256k1::{PublicKey, SecretKey};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use thiserror::Error;

pub mod cli;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// The only keystore version read and written.
pub const KEYSTORE_VERSION: u64 = 3;
/// The only cipher (the v3 minimum requirement, and all geth writes).
pub const CIPHER: &str = "aes-128-ctr";
/// Derived key length written (and the minimum read: AES key ‖ MAC key).
pub const DKLEN_BYTES: usize = 32;
/// Largest `dklen` accepted on import (only the first 32 bytes are used, as in geth).
pub const MAX_DKLEN_BYTES: usize = 64;
/// Bound on scrypt's memory (`128 · r · N` bytes) for imported files: 4× geth's standard
/// parameters (256 MiB at N = 2^18, r = 8), so every file geth writes imports.
pub const MAX_SCRYPT_MEMORY_BYTES: u64 = 1 << 30;
/// Bound on scrypt's `p` for imported files (the Web3 wiki vector uses 8; geth light 6).
pub const MAX_SCRYPT_P: u32 = 16;
/// Bound on PBKDF2 rounds for imported files (the Web3 wiki vector uses 262144).
pub const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;
/// Salt length written (geth: 32 bytes).
pub const SALT_BYTES: usize = 32;
/// AES-CTR IV length (the AES block size).
pub const IV_BYTES: usize = 16;

/// scrypt cost parameters (`N = 2^log_n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScryptParams {
    /// log2 of the CPU/memory cost N.
    pub log_n: u8,
    /// Block size r.
    pub r: u32,
    /// Parallelisation p.
    pub p: u32,
}

/// geth's `StandardScryptN = 1<<18`, `StandardScryptP = 1`, r = 8 (256 MiB, about a second).
pub const STANDARD_SCRYPT: ScryptParams = ScryptParams {
    log_n: 18,
    r: 8,
    p: 1,
};
/// geth's `LightScryptN = 1<<12`, `LightScryptP = 6`, r = 8 (`--lightkdf`: 4 MiB, fast).
pub const LIGHT_SCRYPT: ScryptParams = ScryptParams {
    log_n: 12,
    r: 8,
    p: 6,
};

/// Why a keystore file could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// Not JSON.
    #[error("keystore: invalid JSON: {0}")]
    Json(String),
    /// A required field is missing.
    #[error("keystore: missing field {0}")]
    Missing(&'static str),
    /// A field has the wrong type or bad hex.
    #[error("keystore: malformed field {0}")]
    BadField(&'static str),
    /// `version` is not 3.
    #[error("keystore: unsupported version {0}")]
    UnsupportedVersion(u64),
    /// `cipher` is not `aes-128-ctr`.
    #[error("keystore: unsupported cipher {0:?}")]
    UnsupportedCipher(String),
    /// `kdf` is neither `scrypt` nor `pbkdf2`.
    #[error("keystore: unsupported kdf {0:?}")]
    UnsupportedKdf(String),
    /// PBKDF2 `prf` is not `hmac-sha256`.
    #[error("keystore: unsupported prf {0:?}")]
    UnsupportedPrf(String),
    /// KDF parameters outside the accepted bounds (or invalid for the KDF).
    #[error("keystore: kdf parameter out of range: {0}")]
    KdfParams(&'static str),
    /// Wrong passphrase (or a corrupted file): the MAC does not match.
    #[error("keystore: could not decrypt key with given passphrase (MAC mismatch)")]
    MacMismatch,
    /// The plaintext is not a valid secp256k1 secret key.
    #[error("keystore: decrypted data is not a valid secp256k1 key")]
    InvalidKey,
    /// The file's `address` is not the decrypted key's address.
    #[error("keystore: address field does not match the key")]
    AddressMismatch,
}

/// A decrypted keystore file.
#[derive(Clone, PartialEq, Eq)]
pub struct DecryptedKey {
    /// The secret key bytes (big-endian scalar).
    pub secret: [u8; 32],
    /// Its Ethereum address.
    pub address: [u8; 20],
    /// The file's `id` (UUID), if present.
    pub id: Option<String>,
}

impl std::fmt::Debug for DecryptedKey {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptedKey")
            .field("address", &hex::encode(self.address))
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Ethereum address of `key`: the last 20 bytes of keccak256 of the 64-byte `X ‖ Y`.
pub fn address(key: &PublicKey) -> [u8; 20] {
    let full = key.serialize_uncompressed();
    let h = keccak256(full.get(1..).unwrap_or_default());
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    a
}

/// Address of a secret key (see [`address`]).
pub fn address_of_secret(secret: &[u8; 32]) -> Result<[u8; 20], KeystoreError> {
    let sk = SecretKey::from_slice(secret).map_err(|_| KeystoreError::InvalidKey)?;
    Ok(address(&hush_core::ecies::public_key(&sk)))
}

fn field<'a>(obj: &'a Map<String, Value>, name: &'static str) -> Result<&'a Value, KeystoreError> {
    obj.get(name).ok_or(KeystoreError::Missing(name))
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, KeystoreError> {
    field(obj, name)?
        .as_str()
        .ok_or(KeystoreError::BadField(name))
}

fn obj_field<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a Map<String, Value>, KeystoreError> {
    field(obj, name)?
        .as_object()
        .ok_or(KeystoreError::BadField(name))
}

fn hex_field(obj: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeystoreError> {
    let s = str_field(obj, name)?;
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|_| KeystoreError::BadField(name))
}

/// A non-negative integer; integral floats are accepted as geth's `ensureInt` does.
fn int_field(obj: &Map<String, Value>, name: &'static str) -> Result<u64, KeystoreError> {
    let v = field(obj, name)?;
    if let Some(u) = v.as_u64() {
        return Ok(u);
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Ok(f as u64),
        _ => Err(KeystoreError::BadField(name)),
    }
}

fn u32_field(obj: &Map<String, Value>, name: &'static str) -> Result<u32, KeystoreError> {
    u32::try_from(int_field(obj, name)?).map_err(|_| KeystoreError::KdfParams(name))
}

/// Runs the file's KDF (bounded) and returns the derived key (first 32 bytes used).
fn derive_key(
    kdf: &str,
    params: &Map<String, Value>,
    passphrase: &[u8],
) -> Result<Vec<u8>, KeystoreError> {
    let dklen = usize::try_from(int_field(params, "dklen")?)
        .map_err(|_| KeystoreError::KdfParams("dklen"))?;
    if !(DKLEN_BYTES..=MAX_DKLEN_BYTES).contains(&dklen) {
        return Err(KeystoreError::KdfParams("dklen"));
    }
    let salt = hex_field(params, "salt")?;
    let mut out = vec![0u8; dklen];
    match kdf {
        "scrypt" => {
            let n = int_field(params, "n")?;
            let r = u32_field(params, "r")?;
            let p = u32_field(params, "p")?;
            if n < 2 || !n.is_power_of_two() {
                return Err(KeystoreError::KdfParams("n"));
            }
            let memory = 128u64
                .checked_mul(u64::from(r))
                .and_then(|m| m.checked_mul(n))
                .ok_or(KeystoreError::KdfParams("n"))?;
            if memory > MAX_SCRYPT_MEMORY_BYTES {
                return Err(KeystoreError::KdfParams("n"));
            }
            if r == 0 || p == 0 || p > MAX_SCRYPT_P {
                return Err(KeystoreError::KdfParams("p"));
            }
            let log_n =
                u8::try_from(n.trailing_zeros()).map_err(|_| KeystoreError::KdfParams("n"))?;
            let params =
                scrypt::Params::new(log_n, r, p).map_err(|_| KeystoreError::KdfParams("n"))?;
            scrypt::scrypt(passphrase, &salt, &params, &mut out)
                .map_err(|_| KeystoreError::KdfParams("dklen"))?;
        }
        "pbkdf2" => {
            let prf = str_field(params, "prf")?;
            if prf != "hmac-sha256" {
                return Err(KeystoreError::UnsupportedPrf(prf.to_string()));
            }
            let c = u32_field(params, "c")?;
            if c == 0 || c > MAX_PBKDF2_ROUNDS {
                return Err(KeystoreError::KdfParams("c"));
            }
            pbkdf2::pbkdf2_hmac::<Sha256>(passphrase, &salt, c, &mut out);
        }
        other => return Err(KeystoreError::UnsupportedKdf(other.to_string())),
    }
    Ok(out)
}

/// Decrypts a v3 keystore file (see module docs).
pub fn decrypt_key(json: &[u8], passphrase: &[u8]) -> Result<DecryptedKey, KeystoreError> {
    let v: Value = serde_json::from_slice(json).map_err(|e| KeystoreError::Json(e.to_string()))?;
    let root = v.as_object().ok_or(KeystoreError::BadField("top level"))?;
    let version = int_field(root, "version")?;
    if version != KEYSTORE_VERSION {
        return Err(KeystoreError::UnsupportedVersion(version));
    }
    let crypto = match root.get("crypto").or_else(|| root.get("Crypto")) {
        Some(c) => c.as_object().ok_or(KeystoreError::BadField("crypto"))?,
        None => return Err(KeystoreError::Missing("crypto")),
    };
    let cipher = str_field(crypto, "cipher")?;
    if cipher != CIPHER {
        return Err(KeystoreError::UnsupportedCipher(cipher.to_string()));
    }
    let iv = hex_field(obj_field(crypto, "cipherparams")?, "iv")?;
    let iv: [u8; IV_BYTES] = iv
        .as_slice()
        .try_into()
        .map_err(|_| KeystoreError::BadField("iv"))?;
    let ciphertext = hex_field(crypto, "ciphertext")?;
    if ciphertext.is_empty() || ciphertext.len() > 32 {
        return Err(KeystoreError::BadField("ciphertext"));
    }
    let mac = hex_field(crypto, "mac")?;
    let kdf = str_field(crypto, "kdf")?;
    let derived = derive_key(kdf, obj_field(crypto, "kdfparams")?, passphrase)?;
    let (enc_key, mac_key) = (
        derived.get(..16).ok_or(KeystoreError::KdfParams("dklen"))?,
        derived
            .get(16..32)
            .ok_or(KeystoreError::KdfParams("dklen"))?,
    );
    if keccak256_concat(&[mac_key, &ciphertext]).as_slice() != mac.as_slice() {
        return Err(KeystoreError::MacMismatch);
    }
    let mut plain = ciphertext;
    let mut c =
        Aes128Ctr::new_from_slices(enc_key, &iv).map_err(|_| KeystoreError::BadField("iv"))?;
    c.apply_keystream(&mut plain);
    // Left-pad short keys (geth `ToECDSAUnsafe` reads the bytes as a big integer).
    let mut secret = [0u8; 32];
    secret[32 - plain.len()..].copy_from_slice(&plain);
    let addr = address_of_secret(&secret)?;
    if let Some(a) = root.get("address") {
        let a = a.as_str().ok_or(KeystoreError::BadField("address"))?;
        let a = hex::decode(a.strip_prefix("0x").unwrap_or(a))
            .map_err(|_| KeystoreError::BadField("address"))?;
        if a != addr {
            return Err(KeystoreError::AddressMismatch);
        }
    }
    let id = root.get("id").and_then(Value::as_str).map(str::to_string);
    Ok(DecryptedKey {
        secret,
        address: addr,
        id,
    })
}

/// Encrypts `secret` as a v3 keystore file with scrypt `params` (pretty-printed JSON).
pub fn encrypt_key(
    secret: &[u8; 32],
    passphrase: &[u8],
    params: ScryptParams,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String, KeystoreError> {
    let addr = address_of_secret(secret)?;
    let mut salt = [0u8; SALT_BYTES];
    let mut iv = [0u8; IV_BYTES];
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    rng.fill_bytes(&mut id);
    let sp = scrypt::Params::new(params.log_n, params.r, params.p)
        .map_err(|_| KeystoreError::KdfParams("n"))?;
    let mut derived = [0u8; DKLEN_BYTES];
    scrypt::scrypt(passphrase, &salt, &sp, &mut derived)
        .map_err(|_| KeystoreError::KdfParams("dklen"))?;
    let mut ciphertext = *secret;
    let mut c = Aes128Ctr::new_from_slices(&derived[..16], &iv)
        .map_err(|_| KeystoreError::BadField("iv"))?;
    c.apply_keystream(&mut ciphertext);
    let mac = keccak256_concat(&[&derived[16..32], &ciphertext]);
    let doc = json!({
        "address": hex::encode(addr),
        "crypto": {
            "cipher": CIPHER,
            "ciphertext": hex::encode(ciphertext),
            "cipherparams": { "iv": hex::encode(iv) },
            "kdf": "scrypt",
            "kdfparams": {
                "dklen": DKLEN_BYTES,
                "n": 1u64 << params.log_n,
                "p": params.p,
                "r": params.r,
                "salt": hex::encode(salt),
            },
            "mac": hex::encode(mac),
        },
        "id": uuid::Builder::from_random_bytes(id).into_uuid().to_string(),
        "version": KEYSTORE_VERSION,
    });
    serde_json::to_string_pretty(&doc).map_err(|e| KeystoreError::Json(e.to_string()))
}

#[cfg(test)]
mod tests;
