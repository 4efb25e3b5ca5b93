//! The Double Ratchet with two suites (security.md §4; status-im/doubleratchet `session.go`,
//! status-go `EthereumCrypto`).
//!
//! Contract:
//! - [`Suite::Status`] is status-go's: secp256k1 ratchet keys (33-byte compressed, ECDH = X
//!   coordinate), `KDF_RK` = HKDF-SHA256(salt = RK, IKM = DH, info = [`STATUS_RK_INFO`]) → 96
//!   bytes (RK ‖ CK ‖ unused header key), `KDF_CK` = HMAC-SHA256(CK, 0x0F) / (CK, 0x10),
//!   message keys = HKDF-SHA256(salt = 0³², IKM = MK, info = [`STATUS_MSG_INFO`]) → encKey ‖
//!   authKey ‖ IV, ciphertext `IV ‖ AES-256-CTR ‖ HMAC-SHA256(authKey, AD ‖ IV ‖ ct)`.
//! - [`Suite::Modern`] is hush's: X25519 ratchet keys, HKDF-SHA256 with hush info strings,
//!   ChaCha20-Poly1305 (docs/security.md §6).
//! - Both: AD = caller prefix ‖ header encoding `N (u32 LE) ‖ PN (u32 LE) ‖ DH`.
//! - [`RatchetState`] is a protobuf (prost) message so the caller can persist it as bytes; every
//!   operation checks its fields, so a corrupt record gives [`RatchetError::CorruptState`],
//!   never a panic.
//! - `decrypt` changes the state only when the message authenticates. A message key is
//!   deleted once used: a replay gives [`RatchetError::Replay`], and the state no longer holds
//!   anything from which that key can be derived (the receiving chain key has moved past it).

use aes::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use std::sync::OnceLock;

use hkdf::{Hkdf, HkdfExtract};
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use secp256k1::{PublicKey, SecretKey};
use sha2::Sha256;
use thiserror::Error;

use crate::ecies::{ecdh_x, public_key, random_secret_key};

type HmacSha256 = Hmac<Sha256>;
type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// status-go `KdfRK` HKDF info (security.md §4).
pub const STATUS_RK_INFO: &[u8] = b"rsZUpEuXUqqwXBvSy3EcievAh4cMj6QL";
/// status-go `deriveEncKeys` HKDF info (security.md §4).
pub const STATUS_MSG_INFO: &[u8] = b"pcwSByyx2CRdryCffXJwy7xgVZWtW5Sh";
/// status-go `KdfCK` input for the next chain key.
pub const STATUS_CK_CHAIN_BYTE: u8 = 0x0F;
/// status-go `KdfCK` input for the message key.
pub const STATUS_CK_MESSAGE_BYTE: u8 = 0x10;
/// Modern suite `KDF_RK` HKDF info.
pub const MODERN_RK_INFO: &[u8] = b"hush/modern/v1/root";
/// Modern suite message-key HKDF info.
pub const MODERN_MSG_INFO: &[u8] = b"hush/modern/v1/message";
/// Modern suite `KDF_CK` input for the next chain key (Signal's recommendation).
pub const MODERN_CK_CHAIN_BYTE: u8 = 0x02;
/// Modern suite `KDF_CK` input for the message key.
pub const MODERN_CK_MESSAGE_BYTE: u8 = 0x01;
/// AES block / IV size of the status suite.
pub const STATUS_IV_BYTES: usize = 16;
/// HMAC-SHA256 tag size of the status suite.
pub const STATUS_TAG_BYTES: usize = 32;
/// Poly1305 tag size of the modern suite.
pub const MODERN_TAG_BYTES: usize = 16;
/// Header encoding length without the DH key: N (4) + PN (4).
pub const HEADER_COUNTERS_BYTES: usize = 8;

/// A ratchet cipher suite. The wire value is `DirectMessageProtocol.hush_suite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Suite {
    /// status-go's suite (default; wire value 0).
    Status,
    /// hush's X25519 + HKDF-SHA256 + ChaCha20-Poly1305 suite (wire value 1).
    Modern,
}

impl Suite {
    /// Wire value.
    pub fn to_wire(self) -> u32 {
        match self {
            Suite::Status => 0,
            Suite::Modern => 1,
        }
    }

    /// Parses a wire value.
    pub fn from_wire(value: u32) -> Option<Suite> {
        match value {
            0 => Some(Suite::Status),
            1 => Some(Suite::Modern),
            _ => None,
        }
    }

    /// Length of a ratchet public key on the wire.
    pub fn public_key_bytes(self) -> usize {
        match self {
            Suite::Status => 33,
            Suite::Modern => 32,
        }
    }

    /// A fresh ratchet key pair `(secret 32 B, public)` (`GENERATE_DH`).
    pub fn generate_dh(self, rng: &mut (impl RngCore + CryptoRng)) -> ([u8; 32], Vec<u8>) {
        match self {
            Suite::Status => {
                let sk = random_secret_key(rng);
                (sk.secret_bytes(), public_key(&sk).serialize().to_vec())
            }
            Suite::Modern => {
                let sk = x25519_dalek::StaticSecret::random_from_rng(&mut *rng);
                let pk = x25519_dalek::PublicKey::from(&sk);
                (sk.to_bytes(), pk.as_bytes().to_vec())
            }
        }
    }

    /// The public key of a ratchet secret.
    pub fn public_of(self, secret: &[u8; 32]) -> Result<Vec<u8>, RatchetError> {
        match self {
            Suite::Status => {
                let sk =
                    SecretKey::from_byte_array(secret).map_err(|_| RatchetError::InvalidKey)?;
                Ok(public_key(&sk).serialize().to_vec())
            }
            Suite::Modern => {
                let sk = x25519_dalek::StaticSecret::from(*secret);
                Ok(x25519_dalek::PublicKey::from(&sk).as_bytes().to_vec())
            }
        }
    }

    /// `DH(secret, public)` → 32 bytes.
    pub fn dh(self, secret: &[u8; 32], public: &[u8]) -> Result<[u8; 32], RatchetError> {
        self.dh_parsed(secret, &self.parse_public(public)?)
    }

    /// Parses a remote ratchet public key once, so a DH step that uses it twice (receiving
    /// and new sending chain) pays for the secp256k1 decompression only once.
    fn parse_public(self, public: &[u8]) -> Result<RemoteKey, RatchetError> {
        match self {
            Suite::Status => {
                if public.len() != 33 {
                    return Err(RatchetError::InvalidKey);
                }
                PublicKey::from_slice(public)
                    .map(RemoteKey::Status)
                    .map_err(|_| RatchetError::InvalidKey)
            }
            Suite::Modern => public
                .try_into()
                .map(RemoteKey::Modern)
                .map_err(|_| RatchetError::InvalidKey),
        }
    }

    fn dh_parsed(self, secret: &[u8; 32], public: &RemoteKey) -> Result<[u8; 32], RatchetError> {
        match (self, public) {
            (Suite::Status, RemoteKey::Status(pk)) => {
                let sk =
                    SecretKey::from_byte_array(secret).map_err(|_| RatchetError::InvalidKey)?;
                Ok(ecdh_x(&sk, pk))
            }
            (Suite::Modern, RemoteKey::Modern(pk)) => {
                let sk = x25519_dalek::StaticSecret::from(*secret);
                let shared = sk.diffie_hellman(&x25519_dalek::PublicKey::from(*pk));
                // Low-order points give an all-zero secret: refuse them (RFC 7748 §6.1).
                if !shared.was_contributory() {
                    return Err(RatchetError::InvalidKey);
                }
                Ok(shared.to_bytes())
            }
            _ => Err(RatchetError::InvalidKey),
        }
    }

    /// `KDF_RK(rk, dh)` → (new root key, chain key).
    pub fn kdf_rk(self, rk: &[u8; 32], dh: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
        let hk = Hkdf::<Sha256>::new(Some(rk), dh);
        let mut okm = [0u8; 96];
        let (info, len) = match self {
            Suite::Status => (STATUS_RK_INFO, 96),
            Suite::Modern => (MODERN_RK_INFO, 64),
        };
        hk.expand(info, &mut okm[..len])
            .expect("96 bytes is within HKDF-SHA256's 8160-byte limit");
        (take32(&okm, 0), take32(&okm, 32))
    }

    /// `KDF_CK(ck)` → (next chain key, message key): two HMAC-SHA256 under the same key, so
    /// the key schedule (ipad/opad blocks) is computed once and cloned.
    pub fn kdf_ck(self, ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
        let (chain_byte, msg_byte) = match self {
            Suite::Status => (STATUS_CK_CHAIN_BYTE, STATUS_CK_MESSAGE_BYTE),
            Suite::Modern => (MODERN_CK_CHAIN_BYTE, MODERN_CK_MESSAGE_BYTE),
        };
        let keyed = <HmacSha256 as Mac>::new_from_slice(ck).expect("any key length");
        let mut chain = keyed.clone();
        chain.update(&[chain_byte]);
        let mut message = keyed;
        message.update(&[msg_byte]);
        (
            chain.finalize().into_bytes().into(),
            message.finalize().into_bytes().into(),
        )
    }

    /// `ENCRYPT(mk, plaintext, ad)`.
    pub fn encrypt(self, mk: &[u8; 32], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
        self.encrypt_parts(mk, plaintext, ad, &[])
    }

    /// `ENCRYPT` with AD = `ad_prefix ‖ ad_header`, given in two parts so that the ratchet
    /// needs no buffer to concatenate them (the status suite MACs the parts in sequence).
    fn encrypt_parts(
        self,
        mk: &[u8; 32],
        plaintext: &[u8],
        ad_prefix: &[u8],
        ad_header: &[u8],
    ) -> Vec<u8> {
        match self {
            Suite::Status => {
                let (enc_key, auth_key, iv) = status_message_keys(mk);
                let mut out =
                    Vec::with_capacity(STATUS_IV_BYTES + plaintext.len() + STATUS_TAG_BYTES);
                out.extend_from_slice(&iv);
                out.extend_from_slice(plaintext);
                Aes256Ctr::new(&enc_key.into(), &iv.into())
                    .apply_keystream(&mut out[STATUS_IV_BYTES..]);
                let mut mac =
                    <HmacSha256 as Mac>::new_from_slice(&auth_key).expect("any key length");
                mac.update(ad_prefix);
                mac.update(ad_header);
                mac.update(&out);
                out.extend_from_slice(&mac.finalize().into_bytes());
                out
            }
            Suite::Modern => {
                let (key, nonce) = modern_message_keys(mk);
                with_joined(ad_prefix, ad_header, |ad| {
                    ChaCha20Poly1305::new(&key.into())
                        .encrypt(
                            &nonce.into(),
                            Payload {
                                msg: plaintext,
                                aad: ad,
                            },
                        )
                        .expect("ChaCha20-Poly1305 encryption cannot fail below 256 GiB")
                })
            }
        }
    }

    /// `DECRYPT(mk, ciphertext, ad)`.
    pub fn decrypt(
        self,
        mk: &[u8; 32],
        ciphertext: &[u8],
        ad: &[u8],
    ) -> Result<Vec<u8>, RatchetError> {
        self.decrypt_parts(mk, ciphertext, ad, &[])
    }

    /// `DECRYPT` with AD = `ad_prefix ‖ ad_header` (see [`Suite::encrypt_parts`]).
    fn decrypt_parts(
        self,
        mk: &[u8; 32],
        ciphertext: &[u8],
        ad_prefix: &[u8],
        ad_header: &[u8],
    ) -> Result<Vec<u8>, RatchetError> {
        match self {
            Suite::Status => {
                if ciphertext.len() < STATUS_IV_BYTES + STATUS_TAG_BYTES {
                    return Err(RatchetError::BadTag);
                }
                let (body, tag) = ciphertext.split_at(ciphertext.len() - STATUS_TAG_BYTES);
                let (enc_key, auth_key, _) = status_message_keys(mk);
                let mut mac =
                    <HmacSha256 as Mac>::new_from_slice(&auth_key).expect("any key length");
                mac.update(ad_prefix);
                mac.update(ad_header);
                mac.update(body);
                mac.verify_slice(tag).map_err(|_| RatchetError::BadTag)?;
                let (iv, ct) = body.split_at(STATUS_IV_BYTES);
                let iv: [u8; STATUS_IV_BYTES] = iv.try_into().map_err(|_| RatchetError::BadTag)?;
                let mut pt = ct.to_vec();
                // status-go decrypts with the transmitted IV, not the derived one.
                Aes256Ctr::new(&enc_key.into(), &iv.into()).apply_keystream(&mut pt);
                Ok(pt)
            }
            Suite::Modern => {
                let (key, nonce) = modern_message_keys(mk);
                with_joined(ad_prefix, ad_header, |ad| {
                    ChaCha20Poly1305::new(&key.into())
                        .decrypt(
                            &nonce.into(),
                            Payload {
                                msg: ciphertext,
                                aad: ad,
                            },
                        )
                        .map_err(|_| RatchetError::BadTag)
                })
            }
        }
    }
}

/// A remote ratchet public key, parsed.
enum RemoteKey {
    Status(PublicKey),
    Modern([u8; 32]),
}

/// Calls `f` with `a ‖ b`, allocating only when both are non-empty (an AEAD needs its AD in
/// one slice; the ratchet's AD prefix is usually empty).
fn with_joined<R>(a: &[u8], b: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if a.is_empty() {
        f(b)
    } else if b.is_empty() {
        f(a)
    } else {
        let mut joined = Vec::with_capacity(a.len() + b.len());
        joined.extend_from_slice(a);
        joined.extend_from_slice(b);
        f(&joined)
    }
}

fn take32(buf: &[u8], at: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&buf[at..at + 32]);
    out
}

/// HKDF-SHA256 with the all-zero 32-byte salt both suites use for message keys. The salt is
/// the same for every message, so its HMAC key schedule is computed once per process and
/// cloned (outputs are identical to `Hkdf::new(Some(&[0; 32]), ikm)`).
fn zero_salt_hkdf(ikm: &[u8; 32]) -> Hkdf<Sha256> {
    static EXTRACT: OnceLock<HkdfExtract<Sha256>> = OnceLock::new();
    let mut extract = EXTRACT
        .get_or_init(|| HkdfExtract::new(Some(&[0u8; 32])))
        .clone();
    extract.input_ikm(ikm);
    extract.finalize().1
}

/// status-go `deriveEncKeys`: (encKey, authKey, IV).
pub fn status_message_keys(mk: &[u8; 32]) -> ([u8; 32], [u8; 32], [u8; 16]) {
    let mut okm = [0u8; 80];
    zero_salt_hkdf(mk)
        .expand(STATUS_MSG_INFO, &mut okm)
        .expect("80 bytes is within HKDF-SHA256's limit");
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&okm[64..80]);
    (take32(&okm, 0), take32(&okm, 32), iv)
}

/// Modern suite message keys: HKDF-SHA256(salt 0³², MK, [`MODERN_MSG_INFO`]) → key ‖ nonce.
pub fn modern_message_keys(mk: &[u8; 32]) -> ([u8; 32], [u8; 12]) {
    let mut okm = [0u8; 44];
    zero_salt_hkdf(mk)
        .expand(MODERN_MSG_INFO, &mut okm)
        .expect("44 bytes is within HKDF-SHA256's limit");
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..44]);
    (take32(&okm, 0), nonce)
}

/// Header encoding `N (u32 LE) ‖ PN (u32 LE) ‖ DH` (doubleratchet `MessageHeader.Encode`).
pub fn header_encoding(n: u32, pn: u32, dh: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_COUNTERS_BYTES + dh.len());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&pn.to_le_bytes());
    out.extend_from_slice(dh);
    out
}

/// Longest ratchet public key of any suite (secp256k1 compressed).
const MAX_PUBLIC_KEY_BYTES: usize = 33;

/// [`header_encoding`] on the stack, for the per-message AD.
struct HeaderBytes {
    buf: [u8; HEADER_COUNTERS_BYTES + MAX_PUBLIC_KEY_BYTES],
    len: usize,
}

impl HeaderBytes {
    /// `None` when `dh` is longer than any suite's key (callers check the length first).
    fn new(n: u32, pn: u32, dh: &[u8]) -> Option<HeaderBytes> {
        let mut buf = [0u8; HEADER_COUNTERS_BYTES + MAX_PUBLIC_KEY_BYTES];
        let len = HEADER_COUNTERS_BYTES + dh.len();
        buf.get_mut(HEADER_COUNTERS_BYTES..len)?.copy_from_slice(dh);
        buf[..4].copy_from_slice(&n.to_le_bytes());
        buf[4..HEADER_COUNTERS_BYTES].copy_from_slice(&pn.to_le_bytes());
        Some(HeaderBytes { buf, len })
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Why a ratchet operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RatchetError {
    /// Authentication failed: tampered ciphertext or header, or wrong session.
    #[error("ratchet: authentication failed")]
    BadTag,
    /// The message key was already used (or deleted): replay or very late duplicate.
    #[error("ratchet: message key already used or deleted (replay)")]
    Replay,
    /// Decrypting would skip more than `max_skip` message keys.
    #[error("ratchet: too many skipped messages ({needed} > {limit})")]
    TooManySkipped {
        /// Keys that would be skipped.
        needed: u64,
        /// The limit.
        limit: u32,
    },
    /// A ratchet public key has the wrong length, is not on the curve or is low-order.
    #[error("ratchet: invalid ratchet public key")]
    InvalidKey,
    /// The responder cannot send before it has received a message.
    #[error("ratchet: session cannot send before receiving")]
    CannotSendYet,
    /// The sending chain reached `u32::MAX` messages.
    #[error("ratchet: sending chain exhausted")]
    ChainExhausted,
    /// A state field has the wrong length or an unknown suite.
    #[error("ratchet: corrupt state: {0}")]
    CorruptState(&'static str),
}

/// Bounds applied by [`RatchetState::decrypt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatchetLimits {
    /// Most keys skipped for one message in one chain.
    pub max_skip: u32,
    /// Most skipped keys stored; the oldest are evicted beyond.
    pub max_skipped_keys: u32,
    /// Most previous remote ratchet keys remembered (replay detection across chains).
    pub max_previous_chains: u32,
}

/// A stored skipped message key.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SkippedKey {
    /// Remote ratchet key of the chain.
    #[prost(bytes = "vec", tag = "1")]
    pub remote_public: Vec<u8>,
    /// Message number.
    #[prost(uint32, tag = "2")]
    pub n: u32,
    /// The message key.
    #[prost(bytes = "vec", tag = "3")]
    pub message_key: Vec<u8>,
}

/// A ratchet header as it travels (`DRHeader` minus the bundle id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Sender's ratchet public key.
    pub dh: Vec<u8>,
    /// Message number.
    pub n: u32,
    /// Previous chain length.
    pub pn: u32,
}

/// The Double Ratchet state of one session (persistable protobuf).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RatchetState {
    /// [`Suite`] wire value.
    #[prost(uint32, tag = "1")]
    pub suite: u32,
    /// RK.
    #[prost(bytes = "vec", tag = "2")]
    pub root_key: Vec<u8>,
    /// DHs secret (32 B).
    #[prost(bytes = "vec", tag = "3")]
    pub self_secret: Vec<u8>,
    /// DHs public.
    #[prost(bytes = "vec", tag = "4")]
    pub self_public: Vec<u8>,
    /// DHr (empty until the first message is received, for the responder).
    #[prost(bytes = "vec", tag = "5")]
    pub remote_public: Vec<u8>,
    /// CKs.
    #[prost(bytes = "vec", tag = "6")]
    pub send_chain: Vec<u8>,
    /// CKr.
    #[prost(bytes = "vec", tag = "7")]
    pub recv_chain: Vec<u8>,
    /// Ns.
    #[prost(uint32, tag = "8")]
    pub ns: u32,
    /// Nr.
    #[prost(uint32, tag = "9")]
    pub nr: u32,
    /// PN.
    #[prost(uint32, tag = "10")]
    pub pn: u32,
    /// Skipped message keys, oldest first.
    #[prost(message, repeated, tag = "11")]
    pub skipped: Vec<SkippedKey>,
    /// Previous remote ratchet keys, oldest first.
    #[prost(bytes = "vec", repeated, tag = "12")]
    pub previous_remote: Vec<Vec<u8>>,
}

fn key32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], RatchetError> {
    bytes
        .try_into()
        .map_err(|_| RatchetError::CorruptState(what))
}

impl RatchetState {
    /// Initiator (X3DH sender) state: `DHs = GENERATE_DH()`, `DHr = remote`,
    /// `(RK, CKs) = KDF_RK(SK, DH(DHs, DHr))`, `CKr = SK` (doubleratchet `NewWithRemoteKey`).
    pub fn new_initiator(
        suite: Suite,
        shared_key: &[u8; 32],
        remote_public: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<RatchetState, RatchetError> {
        let (secret, public) = suite.generate_dh(rng);
        let dh = suite.dh(&secret, remote_public)?;
        let (rk, cks) = suite.kdf_rk(shared_key, &dh);
        Ok(RatchetState {
            suite: suite.to_wire(),
            root_key: rk.to_vec(),
            self_secret: secret.to_vec(),
            self_public: public,
            remote_public: remote_public.to_vec(),
            send_chain: cks.to_vec(),
            recv_chain: shared_key.to_vec(),
            ..Default::default()
        })
    }

    /// Responder state: `DHs = (own signed prekey)`, no DHr, RK = CKs = CKr = SK
    /// (doubleratchet `New`).
    pub fn new_responder(
        suite: Suite,
        shared_key: &[u8; 32],
        own_secret: &[u8; 32],
    ) -> Result<RatchetState, RatchetError> {
        Ok(RatchetState {
            suite: suite.to_wire(),
            root_key: shared_key.to_vec(),
            self_secret: own_secret.to_vec(),
            self_public: suite.public_of(own_secret)?,
            remote_public: Vec::new(),
            send_chain: shared_key.to_vec(),
            recv_chain: shared_key.to_vec(),
            ..Default::default()
        })
    }

    /// The suite, or `CorruptState`.
    pub fn suite(&self) -> Result<Suite, RatchetError> {
        Suite::from_wire(self.suite).ok_or(RatchetError::CorruptState("suite"))
    }

    /// Whether this side may send (it knows the remote ratchet key).
    pub fn can_send(&self) -> bool {
        !self.remote_public.is_empty()
    }

    /// RatchetEncrypt: one symmetric step of the sending chain, then ENCRYPT with AD =
    /// `ad_prefix ‖ header encoding`.
    pub fn encrypt(
        &mut self,
        plaintext: &[u8],
        ad_prefix: &[u8],
    ) -> Result<(Header, Vec<u8>), RatchetError> {
        let suite = self.suite()?;
        if !self.can_send() {
            return Err(RatchetError::CannotSendYet);
        }
        let next_ns = self.ns.checked_add(1).ok_or(RatchetError::ChainExhausted)?;
        let (ck, mk) = suite.kdf_ck(&key32(&self.send_chain, "send chain")?);
        let ad_header = HeaderBytes::new(self.ns, self.pn, &self.self_public)
            .ok_or(RatchetError::CorruptState("self public"))?;
        let ct = suite.encrypt_parts(&mk, plaintext, ad_prefix, ad_header.as_slice());
        // `key32` checked the length: overwrite in place, no allocation.
        self.send_chain.copy_from_slice(&ck);
        let header = Header {
            dh: self.self_public.clone(),
            n: self.ns,
            pn: self.pn,
        };
        self.ns = next_ns;
        Ok((header, ct))
    }

    /// RatchetDecrypt. The state changes only if the message authenticates: the new chain
    /// keys and skipped keys are computed into locals and committed after the tag check, so
    /// no copy of the state (with its skipped-key store) is made per message.
    pub fn decrypt(
        &mut self,
        limits: &RatchetLimits,
        header: &Header,
        ciphertext: &[u8],
        ad_prefix: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, RatchetError> {
        let suite = self.suite()?;
        if header.dh.len() != suite.public_key_bytes() {
            return Err(RatchetError::InvalidKey);
        }
        let ad_header =
            HeaderBytes::new(header.n, header.pn, &header.dh).ok_or(RatchetError::InvalidKey)?;
        let ad_header = ad_header.as_slice();

        // 1. A stored skipped key: use it once, then delete it. Skipped keys of the current
        // chain all lie below `nr`, so the common case (the next message of the current chain)
        // skips the linear search of the store.
        let ahead_in_current_chain = header.dh == self.remote_public && header.n >= self.nr;
        let stored = if ahead_in_current_chain {
            None
        } else {
            self.skipped
                .iter()
                .position(|k| k.n == header.n && k.remote_public == header.dh)
        };
        if let Some(pos) = stored {
            let mk = key32(&self.skipped[pos].message_key, "skipped key")?;
            let pt = suite.decrypt_parts(&mk, ciphertext, ad_prefix, ad_header)?;
            self.skipped.remove(pos);
            return Ok(pt);
        }

        // 2. The current receiving chain: symmetric steps only.
        if header.dh == self.remote_public {
            if header.n < self.nr {
                // That key was used already (or evicted from the skipped store).
                return Err(RatchetError::Replay);
            }
            let recv_chain = key32(&self.recv_chain, "recv chain")?;
            let (skipped, ck) = skip_keys(suite, limits, recv_chain, self.nr, header.n)?;
            let (next_ck, mk) = suite.kdf_ck(&ck);
            let pt = suite.decrypt_parts(&mk, ciphertext, ad_prefix, ad_header)?;
            // Commit.
            let first_n = self.nr;
            self.store_skipped(limits, None, first_n, &skipped);
            self.recv_chain.copy_from_slice(&next_ck);
            self.nr = header.n.saturating_add(1);
            return Ok(pt);
        }

        // 3. A new remote ratchet key: DH step.
        if self.previous_remote.contains(&header.dh) {
            // An old chain whose key for this N is gone: used already or evicted.
            return Err(RatchetError::Replay);
        }
        // Keys left in the current receiving chain, up to the sender's previous chain length.
        // A PN below what we received cannot come from an honest peer; nothing is left to
        // skip and the tag check settles it.
        let previous = if self.can_send() && header.pn > self.nr {
            let recv_chain = key32(&self.recv_chain, "recv chain")?;
            skip_keys(suite, limits, recv_chain, self.nr, header.pn)?.0
        } else {
            Vec::new()
        };
        let self_secret = key32(&self.self_secret, "self secret")?;
        let root_key = key32(&self.root_key, "root key")?;
        let remote = suite.parse_public(&header.dh)?;
        let (root_key, recv_chain) =
            suite.kdf_rk(&root_key, &suite.dh_parsed(&self_secret, &remote)?);
        let (new_secret, new_public) = suite.generate_dh(rng);
        let (root_key, send_chain) =
            suite.kdf_rk(&root_key, &suite.dh_parsed(&new_secret, &remote)?);
        let (skipped, ck) = skip_keys(suite, limits, recv_chain, 0, header.n)?;
        let (next_ck, mk) = suite.kdf_ck(&ck);
        let pt = suite.decrypt_parts(&mk, ciphertext, ad_prefix, ad_header)?;

        // Commit: the previous chain's skipped keys (under the old remote key), the old remote
        // key into `previous_remote`, then the new chains.
        let old_nr = self.nr;
        self.store_skipped(limits, None, old_nr, &previous);
        let old_remote = std::mem::replace(&mut self.remote_public, header.dh.clone());
        if !old_remote.is_empty() {
            self.previous_remote.push(old_remote);
            let excess = self
                .previous_remote
                .len()
                .saturating_sub(limits.max_previous_chains as usize);
            self.previous_remote.drain(..excess);
        }
        self.store_skipped(limits, Some(&header.dh), 0, &skipped);
        self.pn = self.ns;
        self.ns = 0;
        self.nr = header.n.saturating_add(1);
        set32(&mut self.root_key, &root_key);
        set32(&mut self.recv_chain, &next_ck);
        set32(&mut self.send_chain, &send_chain);
        set32(&mut self.self_secret, &new_secret);
        self.self_public = new_public;
        Ok(pt)
    }

    /// Appends skipped keys `first_n..` of the chain of `remote` (default: the current remote
    /// key), then evicts the oldest beyond `max_skipped_keys`.
    fn store_skipped(
        &mut self,
        limits: &RatchetLimits,
        remote: Option<&[u8]>,
        first_n: u32,
        keys: &[[u8; 32]],
    ) {
        let remote = remote.unwrap_or(&self.remote_public);
        self.skipped
            .extend(keys.iter().zip(first_n..).map(|(mk, n)| SkippedKey {
                remote_public: remote.to_vec(),
                n,
                message_key: mk.to_vec(),
            }));
        let excess = self
            .skipped
            .len()
            .saturating_sub(limits.max_skipped_keys as usize);
        self.skipped.drain(..excess);
    }
}

/// Message keys `from..until` of a receiving chain whose key at position `from` is `ck`, and
/// the chain key at position `until` (doubleratchet `skipMessageKeys`, without touching the
/// state). `until >= from` is the caller's check.
fn skip_keys(
    suite: Suite,
    limits: &RatchetLimits,
    mut ck: [u8; 32],
    from: u32,
    until: u32,
) -> Result<(Vec<[u8; 32]>, [u8; 32]), RatchetError> {
    let needed = u64::from(until.saturating_sub(from));
    if needed > u64::from(limits.max_skip) {
        return Err(RatchetError::TooManySkipped {
            needed,
            limit: limits.max_skip,
        });
    }
    let mut keys = Vec::with_capacity(needed as usize);
    for _ in from..until {
        let (next_ck, mk) = suite.kdf_ck(&ck);
        keys.push(mk);
        ck = next_ck;
    }
    Ok((keys, ck))
}

/// Overwrites a 32-byte state field, reusing its allocation.
fn set32(field: &mut Vec<u8>, value: &[u8; 32]) {
    field.clear();
    field.extend_from_slice(value);
}
