//! X3DH prekey bundles: the status-go signature input, signing, verification and the base64
//! contact-code form (security.md §1; status-go v0.38 `x3dh.go` `buildSignatureMaterial`,
//! `SignBundle`, `ExtractIdentity`, `ToBase64`/`FromBase64`).
//!
//! Contract:
//! - [`signature_material`] is byte-exact status-go: for each installation id in byte-wise
//!   order, `id ‖ signed_pre_key ‖ decimal(version)`, then `decimal(timestamp)` if non-zero.
//!   `protocol_version` is not signed. Signature = recoverable ECDSA `R ‖ S ‖ V` (V ∈ {0,1})
//!   over `keccak256(material)` with the identity key.
//! - hush's modern-suite advertisement ([`hush_signature_material`]) is signed separately, so
//!   status-go still verifies our bundles; a bundle whose hush fields fail verification is
//!   rejected as a whole (a stripped or forged modern key must not pass silently).
//! - [`verify_bundle`] is total: any `Bundle` value gives a [`VerifiedBundle`] or a
//!   [`BundleError`].

use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message as _;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey};
use thiserror::Error;

use super::proto::{Bundle, HushPreKey};
use crate::ecies::secp;
use crate::keccak::keccak256;

/// Length of a compressed secp256k1 public key (bundle id, identity, DH keys).
pub const COMPRESSED_KEY_BYTES: usize = 33;
/// Length of a recoverable signature `R ‖ S ‖ V`.
pub const SIGNATURE_BYTES: usize = 65;
/// Length of an X25519 public key.
pub const X25519_KEY_BYTES: usize = 32;
/// Bit of `HushPreKey.suites` for the modern suite v1.
pub const SUITE_BIT_MODERN_V1: u32 = 1;
/// Domain separator of the hush signature (docs/security.md §7).
pub const HUSH_SIGNATURE_DOMAIN: &[u8] = b"hush-bundle-v1";
/// Upper bound on a base64 contact code we try to decode (a 3-installation bundle is < 1 KiB).
pub const MAX_CONTACT_CODE_BYTES: usize = 16 * 1024;

/// Why a bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BundleError {
    /// `identity` is not a 33-byte compressed point.
    #[error("bundle: invalid identity key")]
    InvalidIdentity,
    /// `signature` is not 65 bytes with V ∈ 0..=3, or recovery failed.
    #[error("bundle: malformed signature")]
    MalformedSignature,
    /// The recovered signer is not `identity` (status-go "identity key does not match").
    #[error("bundle: signature does not match identity")]
    SignatureMismatch,
    /// The hush extension's signature is missing or wrong.
    #[error("bundle: hush modern-suite signature invalid")]
    HushSignatureMismatch,
    /// A signed prekey is not a 33-byte compressed point, or an X25519 key not 32 bytes.
    #[error("bundle: invalid signed prekey for installation {0:?}")]
    InvalidPreKey(String),
    /// No installations, an empty installation id, or more than the configured maximum.
    #[error("bundle: bad installation list: {0}")]
    BadInstallations(&'static str),
    /// Contact code is not base64 of a Bundle protobuf.
    #[error("bundle: invalid contact code: {0}")]
    InvalidContactCode(String),
}

/// One verified installation entry of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPreKey {
    /// The signed prekey.
    pub signed_pre_key: PublicKey,
    /// Its 33-byte compressed form (= bundle id).
    pub bundle_id: [u8; COMPRESSED_KEY_BYTES],
    /// Bundle version.
    pub version: u32,
    /// Advertised protocol version (unsigned by status-go).
    pub protocol_version: u32,
    /// Modern-suite X25519 prekey when advertised (and signed).
    pub modern_pre_key: Option<[u8; X25519_KEY_BYTES]>,
}

/// A bundle whose signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// The signer.
    pub identity: PublicKey,
    /// Creation time, Unix nanoseconds.
    pub timestamp_ns: i64,
    /// installation id → prekey.
    pub installations: BTreeMap<String, VerifiedPreKey>,
}

/// status-go's signature input (security.md §1).
pub fn signature_material(bundle: &Bundle) -> Vec<u8> {
    let mut material = Vec::new();
    // BTreeMap<String, _> iterates in byte-wise order = Go sort.Strings.
    for (id, spk) in &bundle.signed_pre_keys {
        material.extend_from_slice(id.as_bytes());
        material.extend_from_slice(&spk.signed_pre_key);
        material.extend_from_slice(spk.version.to_string().as_bytes());
    }
    if bundle.timestamp != 0 {
        material.extend_from_slice(bundle.timestamp.to_string().as_bytes());
    }
    material
}

/// hush's signature input for the modern advertisement: `"hush-bundle-v1" ‖ status material ‖
/// for id in byte order: be32(len id) ‖ id ‖ be32(len key) ‖ key ‖ be32(suites)`.
pub fn hush_signature_material(bundle: &Bundle) -> Vec<u8> {
    let mut material = HUSH_SIGNATURE_DOMAIN.to_vec();
    material.extend_from_slice(&signature_material(bundle));
    for (id, hk) in &bundle.hush_pre_keys {
        material.extend_from_slice(&(id.len() as u32).to_be_bytes());
        material.extend_from_slice(id.as_bytes());
        material.extend_from_slice(&(hk.x25519_pre_key.len() as u32).to_be_bytes());
        material.extend_from_slice(&hk.x25519_pre_key);
        material.extend_from_slice(&hk.suites.to_be_bytes());
    }
    material
}

/// `R ‖ S ‖ V` over `keccak256(material)` (go-ethereum `crypto.Sign`).
pub fn sign_material(material: &[u8], key: &SecretKey) -> [u8; SIGNATURE_BYTES] {
    let msg = Message::from_digest(keccak256(material));
    let (rec, rs) = secp().sign_ecdsa_recoverable(&msg, key).serialize_compact();
    let mut out = [0u8; SIGNATURE_BYTES];
    out[..64].copy_from_slice(&rs);
    out[64] = i32::from(rec) as u8;
    out
}

/// Recovers the signer of `material` (go-ethereum `crypto.SigToPub`).
pub fn recover_signer(material: &[u8], signature: &[u8]) -> Result<PublicKey, BundleError> {
    let (rs, v) = match signature {
        [rs @ .., v] if rs.len() == 64 => (rs, *v),
        _ => return Err(BundleError::MalformedSignature),
    };
    let rec = RecoveryId::try_from(i32::from(v)).map_err(|_| BundleError::MalformedSignature)?;
    let sig =
        RecoverableSignature::from_compact(rs, rec).map_err(|_| BundleError::MalformedSignature)?;
    let msg = Message::from_digest(keccak256(material));
    secp()
        .recover_ecdsa(&msg, &sig)
        .map_err(|_| BundleError::MalformedSignature)
}

/// Sets `identity`, `signature` and (if `hush_pre_keys` is non-empty) `hush_signature`.
pub fn sign_bundle(bundle: &mut Bundle, identity: &SecretKey) {
    bundle.identity = crate::ecies::public_key(identity).serialize().to_vec();
    bundle.signature = sign_material(&signature_material(bundle), identity).to_vec();
    bundle.hush_signature = if bundle.hush_pre_keys.is_empty() {
        Vec::new()
    } else {
        sign_material(&hush_signature_material(bundle), identity).to_vec()
    };
}

/// Verifies a bundle (status-go `ExtractIdentity`) and its hush extension.
///
/// status-go compares Ethereum addresses (keccak of the 64-byte key); comparing the keys
/// themselves is equivalent.
pub fn verify_bundle(bundle: &Bundle, max_prekeys: usize) -> Result<VerifiedBundle, BundleError> {
    if bundle.identity.len() != COMPRESSED_KEY_BYTES {
        return Err(BundleError::InvalidIdentity);
    }
    let identity =
        PublicKey::from_slice(&bundle.identity).map_err(|_| BundleError::InvalidIdentity)?;
    if bundle.signed_pre_keys.is_empty() {
        return Err(BundleError::BadInstallations("no signed prekeys"));
    }
    if bundle.signed_pre_keys.len() > max_prekeys || bundle.hush_pre_keys.len() > max_prekeys {
        return Err(BundleError::BadInstallations("too many installations"));
    }
    let signer = recover_signer(&signature_material(bundle), &bundle.signature)?;
    if signer != identity {
        return Err(BundleError::SignatureMismatch);
    }
    if !bundle.hush_pre_keys.is_empty() || !bundle.hush_signature.is_empty() {
        let hush_signer = recover_signer(&hush_signature_material(bundle), &bundle.hush_signature)
            .map_err(|_| BundleError::HushSignatureMismatch)?;
        if hush_signer != identity {
            return Err(BundleError::HushSignatureMismatch);
        }
    }
    let mut installations = BTreeMap::new();
    for (id, spk) in &bundle.signed_pre_keys {
        if id.is_empty() {
            return Err(BundleError::BadInstallations("empty installation id"));
        }
        let bundle_id: [u8; COMPRESSED_KEY_BYTES] = spk
            .signed_pre_key
            .as_slice()
            .try_into()
            .map_err(|_| BundleError::InvalidPreKey(id.clone()))?;
        let signed_pre_key = PublicKey::from_slice(&bundle_id)
            .map_err(|_| BundleError::InvalidPreKey(id.clone()))?;
        let modern_pre_key = match bundle.hush_pre_keys.get(id) {
            Some(HushPreKey {
                x25519_pre_key,
                suites,
            }) if suites & SUITE_BIT_MODERN_V1 != 0 => Some(
                x25519_pre_key
                    .as_slice()
                    .try_into()
                    .map_err(|_| BundleError::InvalidPreKey(id.clone()))?,
            ),
            _ => None,
        };
        installations.insert(
            id.clone(),
            VerifiedPreKey {
                signed_pre_key,
                bundle_id,
                version: spk.version,
                protocol_version: spk.protocol_version,
                modern_pre_key,
            },
        );
    }
    Ok(VerifiedBundle {
        identity,
        timestamp_ns: bundle.timestamp,
        installations,
    })
}

/// Contact-code form of a bundle: standard base64 (with padding) of its protobuf encoding
/// (status-go `Bundle.ToBase64`).
pub fn to_contact_code(bundle: &Bundle) -> String {
    base64::engine::general_purpose::STANDARD.encode(bundle.encode_to_vec())
}

/// Parses a contact code (status-go `FromBase64`). The result is not yet verified.
pub fn from_contact_code(code: &str) -> Result<Bundle, BundleError> {
    if code.len() > MAX_CONTACT_CODE_BYTES {
        return Err(BundleError::InvalidContactCode("too long".into()));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(code.trim())
        .map_err(|e| BundleError::InvalidContactCode(e.to_string()))?;
    Bundle::decode(bytes.as_slice()).map_err(|e| BundleError::InvalidContactCode(e.to_string()))
}
