//! The Whisper message inside an envelope's Data: plaintext layout, padding, signature and
//! symmetric encryption (whisper-v6.md §6–§8).
//!
//! Contract:
//! - [`build_plaintext`] writes `flags ‖ payloadSize (LE, 1..3 bytes) ‖ payload ‖ padding
//!   [‖ signature(65)]` exactly as Go's `NewSentMessage` + `sign` do; random padding comes from
//!   the caller's RNG.
//! - [`parse_plaintext`] is Go's `ValidateAndParse` made total: any input gives a
//!   [`ParsedMessage`] or a [`WhisperError`], never a panic.
//! - [`encrypt_symmetric`]/[`decrypt_symmetric`]: AES-256-GCM, `Data = ct ‖ tag(16) ‖ nonce(12)`.
//! - [`encrypt_asymmetric`]/[`decrypt_asymmetric`]: go-ethereum's ECIES (`crypto/ecies`, as
//!   in `core::ecies`, no shared info): `Data = 04 ‖ R(64) ‖ IV(16) ‖ ct ‖ tag(32)` (§7).
//! - [`wrap`] = Go's `Wrap` for either key kind ([`Encryption`]); [`wrap_symmetric`] is the
//!   symmetric shorthand. [`open_symmetric`]/[`open_asymmetric`] = `Envelope.Open` for a
//!   symmetric / asymmetric filter.

use std::collections::BTreeMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{CryptoRng, RngCore};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey};

use crate::ecies;
use sha2::Sha256;

use super::bloom::Topic;
use super::envelope::{Envelope, EnvelopeFields, PowFormula, DEFAULT_TTL_SECS};
use super::WhisperError;
use crate::keccak::keccak256;

/// Length of the flags byte (`flagsLength`).
pub const FLAGS_LEN: usize = 1;
/// Flags bits 0–1: width in bytes of the payload-size field (`SizeMask`).
pub const SIZE_MASK: u8 = 3;
/// Flags bit 2: a signature is appended (`signatureFlag`).
pub const SIGNATURE_FLAG: u8 = 4;
/// R ‖ S ‖ V, V ∈ {0,1} (`signatureLength`).
pub const SIGNATURE_LEN: usize = 65;
/// Plaintexts are padded to a multiple of this many bytes (`padSizeLimit`).
pub const PAD_SIZE_LIMIT: usize = 256;
/// AES-256 key length (`aesKeyLength`).
pub const AES_KEY_LEN: usize = 32;
/// AES-GCM nonce length, appended to the ciphertext (`aesNonceLength`).
pub const AES_NONCE_LEN: usize = 12;
/// PBKDF2 iteration count of `AddSymKeyFromPassword` — 65356, not 65536 (§8).
pub const PBKDF2_ITERATIONS: u32 = 65356;
/// Largest payload the 3-byte size field can describe (2^24 − 1 bytes); larger payloads
/// exceed any Whisper message size limit anyway.
pub const MAX_PAYLOAD_LEN: usize = (1 << 24) - 1;
/// How many times random padding / nonces are redrawn when the RNG yields all zeros (Go
/// rejects all-zero random data); hitting it means a broken RNG.
const MAX_RANDOM_DRAWS: usize = 16;

/// What to send: Go's `MessageParams` restricted to what hush needs (the key is passed
/// separately).
#[derive(Clone, Debug)]
pub struct MessageParams {
    /// The payload.
    pub payload: Vec<u8>,
    /// Explicit padding, used verbatim if non-empty; else random padding to a multiple of 256.
    pub padding: Option<Vec<u8>>,
    /// Key to sign with (every Status message is signed).
    pub sign_with: Option<SecretKey>,
    /// The envelope topic.
    pub topic: Topic,
    /// TTL in seconds; 0 means [`DEFAULT_TTL_SECS`].
    pub ttl_secs: u32,
    /// Proof-of-work target (Status: 0.002); 0 = no work.
    pub pow_target: f64,
}

/// A decrypted, parsed message as delivered to a filter (Go's `ReceivedMessage`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    /// Hash of the carrying envelope (the message's Whisper-level id).
    pub envelope_hash: [u8; 32],
    /// Envelope topic.
    pub topic: Topic,
    /// The payload.
    pub payload: Vec<u8>,
    /// The padding.
    pub padding: Vec<u8>,
    /// Public key recovered from the signature, if signed.
    pub signer: Option<PublicKey>,
    /// `Expiry - TTL`, Unix seconds.
    pub sent_secs: u32,
    /// Envelope TTL, seconds.
    pub ttl_secs: u32,
    /// Envelope proof of work (as computed by the receiving node's formula).
    pub pow: f64,
}

/// The fields of a parsed plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedMessage {
    /// Flags byte.
    pub flags: u8,
    /// Payload.
    pub payload: Vec<u8>,
    /// Padding (between payload and signature).
    pub padding: Vec<u8>,
    /// The 65-byte signature, if flagged.
    pub signature: Option<[u8; SIGNATURE_LEN]>,
    /// The recovered signer, if signed.
    pub signer: Option<PublicKey>,
}

/// Width of the payload-size field (Go `getSizeOfPayloadSizeField`): 1 below 256, 2 below
/// 65536, else 3.
fn size_field_len(payload_len: usize) -> usize {
    let mut s = 1;
    let mut i = payload_len;
    while i >= 256 {
        s += 1;
        i /= 256;
    }
    s
}

fn random_nonzero(
    rng: &mut (impl RngCore + CryptoRng),
    out: &mut [u8],
) -> Result<(), WhisperError> {
    for _ in 0..MAX_RANDOM_DRAWS {
        rng.fill_bytes(out);
        if out.iter().any(|&b| b != 0) {
            return Ok(());
        }
    }
    Err(WhisperError::BadRandomness)
}

/// Builds the plaintext (flags, size, payload, padding) and signs it if `params.sign_with`
/// is set [W-msg `NewSentMessage`, `appendPadding`, `sign`].
pub fn build_plaintext(
    params: &MessageParams,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, WhisperError> {
    let len = params.payload.len();
    if len > MAX_PAYLOAD_LEN {
        return Err(WhisperError::PayloadTooLarge {
            size: len,
            max: MAX_PAYLOAD_LEN,
        });
    }
    let width = size_field_len(len);
    let mut raw = Vec::with_capacity(FLAGS_LEN + width + len + PAD_SIZE_LIMIT + SIGNATURE_LEN);
    raw.push(width as u8); // flags: size-field width in bits 0-1
    raw.extend_from_slice(&(len as u32).to_le_bytes()[..width]);
    raw.extend_from_slice(&params.payload);
    match &params.padding {
        Some(p) if !p.is_empty() => raw.extend_from_slice(p),
        _ => {
            // "raw = 1 + sizeFieldLen + len(payload) + (65 if signing); padLen = 256 − raw % 256"
            let mut raw_size = FLAGS_LEN + width + len;
            if params.sign_with.is_some() {
                raw_size += SIGNATURE_LEN;
            }
            let pad_len = PAD_SIZE_LIMIT - raw_size % PAD_SIZE_LIMIT;
            let mut pad = vec![0u8; pad_len];
            random_nonzero(rng, &mut pad)?;
            raw.extend_from_slice(&pad);
        }
    }
    if let Some(key) = &params.sign_with {
        // "it is important to set this flag before signing" [W-msg `sign`].
        raw[0] |= SIGNATURE_FLAG;
        let sig = sign_recoverable(key, &keccak256(&raw));
        raw.extend_from_slice(&sig);
    }
    Ok(raw)
}

/// Go's `crypto.Sign`: 65 bytes R ‖ S ‖ V with V ∈ {0,1}.
pub fn sign_recoverable(key: &SecretKey, digest: &[u8; 32]) -> [u8; SIGNATURE_LEN] {
    let sig = crate::ecies::secp().sign_ecdsa_recoverable(&Message::from_digest(*digest), key);
    let (id, compact) = sig.serialize_compact();
    let mut out = [0u8; SIGNATURE_LEN];
    out[..64].copy_from_slice(&compact);
    out[64] = i32::from(id) as u8;
    out
}

/// Recovered signers remembered per process, keyed by (signature, digest).
///
/// Recovery is a pure function of public data, so remembering it changes no result. In one
/// node every message is recovered once (duplicates are dropped before decryption), so this
/// only costs a lookup; in the simulator, where thousands of nodes recover the same signature
/// of the same message within seconds, it turns N recoveries (~50 µs each) into one.
pub const SIGNER_CACHE_ENTRIES: usize = 4096;

type SignerCache = BTreeMap<([u8; SIGNATURE_LEN], [u8; 32]), PublicKey>;

/// Go's `crypto.SigToPub`: recovers the signer of `digest` from a 65-byte R ‖ S ‖ V signature
/// (V ∈ {0,1}; 27/28 are rejected as Go does). Memoised, see [`SIGNER_CACHE_ENTRIES`].
pub fn recover_signer(
    sig: &[u8; SIGNATURE_LEN],
    digest: &[u8; 32],
) -> Result<PublicKey, WhisperError> {
    static CACHE: Mutex<SignerCache> = Mutex::new(BTreeMap::new());
    if let Ok(cache) = CACHE.lock() {
        if let Some(key) = cache.get(&(*sig, *digest)) {
            return Ok(*key);
        }
    }
    let key = recover_signer_uncached(sig, digest)?;
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= SIGNER_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert((*sig, *digest), key);
    }
    Ok(key)
}

/// [`recover_signer`] without the memo (what the benchmarks measure as the primitive).
pub fn recover_signer_uncached(
    sig: &[u8; SIGNATURE_LEN],
    digest: &[u8; 32],
) -> Result<PublicKey, WhisperError> {
    let id = RecoveryId::try_from(i32::from(sig[64])).map_err(|_| WhisperError::BadSignature)?;
    let rsig = RecoverableSignature::from_compact(&sig[..64], id)
        .map_err(|_| WhisperError::BadSignature)?;
    crate::ecies::secp()
        .recover_ecdsa(&Message::from_digest(*digest), &rsig)
        .map_err(|_| WhisperError::BadSignature)
}

/// Go's `ValidateAndParse`, total. If flagged, the last 65 bytes are the signature and the
/// signer is recovered from keccak256 of everything before it.
pub fn parse_plaintext(raw: &[u8]) -> Result<ParsedMessage, WhisperError> {
    let flags = *raw
        .first()
        .ok_or(WhisperError::InvalidMessage("empty plaintext"))?;
    let mut end = raw.len();
    let mut signature = None;
    let mut signer = None;
    if flags & SIGNATURE_FLAG != 0 {
        end = end.saturating_sub(SIGNATURE_LEN);
        if end <= 1 {
            return Err(WhisperError::InvalidMessage("signed plaintext too short"));
        }
        let (signed, sig) = raw.split_at(end);
        let sig: [u8; SIGNATURE_LEN] = sig
            .try_into()
            .map_err(|_| WhisperError::InvalidMessage("signature length"))?;
        signer = Some(recover_signer(&sig, &keccak256(signed))?);
        signature = Some(sig);
    }
    let width = usize::from(flags & SIZE_MASK);
    let body = raw
        .get(1..end)
        .ok_or(WhisperError::InvalidMessage("truncated plaintext"))?;
    let (payload, padding) = if width == 0 {
        (&[][..], body)
    } else {
        let field = body
            .get(..width)
            .ok_or(WhisperError::InvalidMessage("truncated size field"))?;
        let size = field
            .iter()
            .rev()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let rest = body.get(width..).unwrap_or_default();
        if size > rest.len() {
            return Err(WhisperError::InvalidMessage("payload size exceeds message"));
        }
        rest.split_at(size)
    };
    Ok(ParsedMessage {
        flags,
        payload: payload.to_vec(),
        padding: padding.to_vec(),
        signature,
        signer,
    })
}

fn check_sym_key(key: &[u8; AES_KEY_LEN]) -> Result<(), WhisperError> {
    // Go `validateDataIntegrity(key, aesKeyLength)`: right length and not all zero.
    if key.iter().all(|&b| b == 0) {
        return Err(WhisperError::InvalidKey);
    }
    Ok(())
}

/// AES-256-GCM encryption with a random 12-byte nonce appended: `ct ‖ tag(16) ‖ nonce(12)`,
/// no additional data [W-msg `encryptSymmetric`].
pub fn encrypt_symmetric(
    plaintext: &[u8],
    key: &[u8; AES_KEY_LEN],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, WhisperError> {
    check_sym_key(key)?;
    let mut nonce = [0u8; AES_NONCE_LEN];
    random_nonzero(rng, &mut nonce)?;
    let cipher = Aes256Gcm::new(key.into());
    let mut out = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .map_err(|_| WhisperError::PayloadTooLarge {
            size: plaintext.len(),
            max: MAX_PAYLOAD_LEN,
        })?;
    out.extend_from_slice(&nonce);
    Ok(out)
}

/// Reverses [`encrypt_symmetric`]: the last 12 bytes are the nonce [W-msg `decryptSymmetric`].
pub fn decrypt_symmetric(data: &[u8], key: &[u8; AES_KEY_LEN]) -> Result<Vec<u8>, WhisperError> {
    if data.len() < AES_NONCE_LEN {
        return Err(WhisperError::DecryptFailed);
    }
    let (ct, nonce) = data.split_at(data.len() - AES_NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(nonce), ct)
        .map_err(|_| WhisperError::DecryptFailed)
}

/// `shh_generateSymKeyFromPassword`: PBKDF2-HMAC-SHA256(password, salt = empty, 65356
/// iterations, 32 bytes) [W-wh `AddSymKeyFromPassword`].
pub fn sym_key_from_password(password: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, &[], PBKDF2_ITERATIONS, &mut out);
    out
}

/// How an outgoing message is encrypted (Go `MessageParams.KeySym` / `.Dst`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// AES-256-GCM with this 32-byte key.
    Symmetric([u8; AES_KEY_LEN]),
    /// ECIES to this public key.
    Asymmetric(PublicKey),
}

/// ECIES encryption to `key` exactly as go-ethereum's `ecies.Encrypt(rand, key, msg, nil, nil)`
/// [W-msg `encryptAsymmetric`]. Any parsed [`PublicKey`] has non-zero X and Y, which is Go's
/// `ValidatePublicKey` check.
pub fn encrypt_asymmetric(
    plaintext: &[u8],
    key: &PublicKey,
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<u8> {
    ecies::encrypt(rng, key, plaintext, &[])
}

/// Reverses [`encrypt_asymmetric`] with our secret key; any failure (short, bad point, bad
/// tag) is [`WhisperError::DecryptFailed`] ("not for me").
pub fn decrypt_asymmetric(data: &[u8], key: &SecretKey) -> Result<Vec<u8>, WhisperError> {
    ecies::decrypt(key, data, &[]).map_err(|_| WhisperError::DecryptFailed)
}

/// Go's `Wrap`: plaintext → sign → encrypt (symmetric or asymmetric) → envelope (`Expiry =
/// now + TTL`) → seal. `start_nonce` and `max_seal_iterations` bound the deterministic PoW
/// search.
#[allow(clippy::too_many_arguments)]
pub fn wrap(
    params: &MessageParams,
    encryption: &Encryption,
    now_secs: u32,
    formula: PowFormula,
    start_nonce: u64,
    max_seal_iterations: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Envelope, WhisperError> {
    let ttl = if params.ttl_secs == 0 {
        DEFAULT_TTL_SECS
    } else {
        params.ttl_secs
    };
    let plain = build_plaintext(params, rng)?;
    let data = match encryption {
        Encryption::Symmetric(key) => encrypt_symmetric(&plain, key, rng)?,
        Encryption::Asymmetric(key) => encrypt_asymmetric(&plain, key, rng),
    };
    let mut env = Envelope {
        expiry: now_secs.wrapping_add(ttl),
        ttl,
        topic: params.topic,
        data,
        nonce: 0,
    };
    env.seal(formula, params.pow_target, start_nonce, max_seal_iterations)?;
    Ok(env)
}

/// Go's `Wrap` with a symmetric key: plaintext → sign → encrypt → envelope (`Expiry = now +
/// TTL`) → seal. `start_nonce` and `max_seal_iterations` bound the deterministic PoW search.
#[allow(clippy::too_many_arguments)]
pub fn wrap_symmetric(
    params: &MessageParams,
    key: &[u8; AES_KEY_LEN],
    now_secs: u32,
    formula: PowFormula,
    start_nonce: u64,
    max_seal_iterations: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Envelope, WhisperError> {
    wrap(
        params,
        &Encryption::Symmetric(*key),
        now_secs,
        formula,
        start_nonce,
        max_seal_iterations,
        rng,
    )
}

/// Go's `Envelope.Open` for a symmetric filter: decrypt, parse, fill the envelope fields.
/// `hash` is the envelope's hash (callers usually have it already).
pub fn open_symmetric(
    env: &Envelope,
    hash: [u8; 32],
    key: &[u8; AES_KEY_LEN],
    formula: PowFormula,
) -> Result<ReceivedMessage, WhisperError> {
    let plain = decrypt_symmetric(&env.data, key)?;
    let parsed = parse_plaintext(&plain)?;
    Ok(ReceivedMessage {
        envelope_hash: hash,
        topic: env.topic,
        payload: parsed.payload,
        padding: parsed.padding,
        signer: parsed.signer,
        sent_secs: env.sent_secs(),
        ttl_secs: env.ttl,
        pow: env.pow(formula, 0),
    })
}

/// A symmetric filter's prepared AES-256-GCM key schedule, so that trying many envelopes
/// against one key does not redo the key expansion each time.
#[derive(Clone)]
pub struct SymmetricOpener {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SymmetricOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricOpener(..)")
    }
}

impl SymmetricOpener {
    /// Prepares `key`.
    pub fn new(key: &[u8; AES_KEY_LEN]) -> SymmetricOpener {
        SymmetricOpener {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// [`open_symmetric`] with the envelope's already computed `pow` (the machine computes it
    /// while validating).
    pub fn open(
        &self,
        env: &Envelope,
        hash: [u8; 32],
        pow: f64,
    ) -> Result<ReceivedMessage, WhisperError> {
        self.open_fields(env.view(), hash, pow)
    }

    /// [`Self::open`] for an envelope read in place.
    pub fn open_fields(
        &self,
        env: EnvelopeFields<'_>,
        hash: [u8; 32],
        pow: f64,
    ) -> Result<ReceivedMessage, WhisperError> {
        let data = env.data;
        if data.len() < AES_NONCE_LEN {
            return Err(WhisperError::DecryptFailed);
        }
        let (ct, nonce) = data.split_at(data.len() - AES_NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| WhisperError::DecryptFailed)?;
        let parsed = parse_plaintext(&plain)?;
        Ok(ReceivedMessage {
            envelope_hash: hash,
            topic: env.topic,
            payload: parsed.payload,
            padding: parsed.padding,
            signer: parsed.signer,
            sent_secs: env.sent_secs(),
            ttl_secs: env.ttl,
            pow,
        })
    }
}

/// Go's `Envelope.Open` for an asymmetric filter: ECIES-decrypt with `key`, parse, fill the
/// envelope fields.
pub fn open_asymmetric(
    env: &Envelope,
    hash: [u8; 32],
    key: &SecretKey,
    formula: PowFormula,
) -> Result<ReceivedMessage, WhisperError> {
    open_asymmetric_fields(env.view(), hash, key, env.pow(formula, 0))
}

/// [`open_asymmetric`] for an envelope read in place, whose PoW (as computed with no future
/// allowance) the caller gives.
pub fn open_asymmetric_fields(
    env: EnvelopeFields<'_>,
    hash: [u8; 32],
    key: &SecretKey,
    pow: f64,
) -> Result<ReceivedMessage, WhisperError> {
    let plain = decrypt_asymmetric(env.data, key)?;
    let parsed = parse_plaintext(&plain)?;
    Ok(ReceivedMessage {
        envelope_hash: hash,
        topic: env.topic,
        payload: parsed.payload,
        padding: parsed.padding,
        signer: parsed.signer,
        sent_secs: env.sent_secs(),
        ttl_secs: env.ttl,
        pow,
    })
}
