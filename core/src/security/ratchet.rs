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
use hkdf::Hkdf;
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
        match self {
            Suite::Status => {
                if public.len() != 33 {
                    return Err(RatchetError::InvalidKey);
                }
                let sk =
                    SecretKey::from_byte_array(secret).map_err(|_| RatchetError::InvalidKey)?;
                let pk = PublicKey::from_slice(public).map_err(|_| RatchetError::InvalidKey)?;
                Ok(ecdh_x(&sk, &pk))
            }
            Suite::Modern => {
                let pk: [u8; 32] = public.try_into().map_err(|_| RatchetError::InvalidKey)?;
                let sk = x25519_dalek::StaticSecret::from(*secret);
                let shared = sk.diffie_hellman(&x25519_dalek::PublicKey::from(pk));
                // Low-order points give an all-zero secret: refuse them (RFC 7748 §6.1).
                if !shared.was_contributory() {
                    return Err(RatchetError::InvalidKey);
                }
                Ok(shared.to_bytes())
            }
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

    /// `KDF_CK(ck)` → (next chain key, message key).
    pub fn kdf_ck(self, ck: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
        let (chain_byte, msg_byte) = match self {
            Suite::Status => (STATUS_CK_CHAIN_BYTE, STATUS_CK_MESSAGE_BYTE),
            Suite::Modern => (MODERN_CK_CHAIN_BYTE, MODERN_CK_MESSAGE_BYTE),
        };
        (hmac32(ck, &[chain_byte]), hmac32(ck, &[msg_byte]))
    }

    /// `ENCRYPT(mk, plaintext, ad)`.
    pub fn encrypt(self, mk: &[u8; 32], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
        match self {
            Suite::Status => {
                let (enc_key, auth_key, iv) = status_message_keys(mk);
                let mut out = Vec::with_capacity(STATUS_IV_BYTES + plaintext.len() + 32);
                out.extend_from_slice(&iv);
                out.extend_from_slice(plaintext);
                Aes256Ctr::new(&enc_key.into(), &iv.into())
                    .apply_keystream(&mut out[STATUS_IV_BYTES..]);
                let mut mac =
                    <HmacSha256 as Mac>::new_from_slice(&auth_key).expect("any key length");
                mac.update(ad);
                mac.update(&out);
                out.extend_from_slice(&mac.finalize().into_bytes());
                out
            }
            Suite::Modern => {
                let (key, nonce) = modern_message_keys(mk);
                ChaCha20Poly1305::new(&key.into())
                    .encrypt(
                        &nonce.into(),
                        Payload {
                            msg: plaintext,
                            aad: ad,
                        },
                    )
                    .expect("ChaCha20-Poly1305 encryption cannot fail below 256 GiB")
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
        match self {
            Suite::Status => {
                if ciphertext.len() < STATUS_IV_BYTES + STATUS_TAG_BYTES {
                    return Err(RatchetError::BadTag);
                }
                let (body, tag) = ciphertext.split_at(ciphertext.len() - STATUS_TAG_BYTES);
                let (enc_key, auth_key, _) = status_message_keys(mk);
                let mut mac =
                    <HmacSha256 as Mac>::new_from_slice(&auth_key).expect("any key length");
                mac.update(ad);
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
                ChaCha20Poly1305::new(&key.into())
                    .decrypt(
                        &nonce.into(),
                        Payload {
                            msg: ciphertext,
                            aad: ad,
                        },
                    )
                    .map_err(|_| RatchetError::BadTag)
            }
        }
    }
}

fn take32(buf: &[u8], at: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&buf[at..at + 32]);
    out
}

fn hmac32(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// status-go `deriveEncKeys`: (encKey, authKey, IV).
pub fn status_message_keys(mk: &[u8; 32]) -> ([u8; 32], [u8; 32], [u8; 16]) {
    let hk = Hkdf::<Sha256>::new(Some(&[0u8; 32]), mk);
    let mut okm = [0u8; 80];
    hk.expand(STATUS_MSG_INFO, &mut okm)
        .expect("80 bytes is within HKDF-SHA256's limit");
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&okm[64..80]);
    (take32(&okm, 0), take32(&okm, 32), iv)
}

/// Modern suite message keys: HKDF-SHA256(salt 0³², MK, [`MODERN_MSG_INFO`]) → key ‖ nonce.
pub fn modern_message_keys(mk: &[u8; 32]) -> ([u8; 32], [u8; 12]) {
    let hk = Hkdf::<Sha256>::new(Some(&[0u8; 32]), mk);
    let mut okm = [0u8; 44];
    hk.expand(MODERN_MSG_INFO, &mut okm)
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
        let header = Header {
            dh: self.self_public.clone(),
            n: self.ns,
            pn: self.pn,
        };
        let mut ad = ad_prefix.to_vec();
        ad.extend_from_slice(&header_encoding(header.n, header.pn, &header.dh));
        let ct = suite.encrypt(&mk, plaintext, &ad);
        self.send_chain = ck.to_vec();
        self.ns = next_ns;
        Ok((header, ct))
    }

    /// RatchetDecrypt. The state changes only if the message authenticates.
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
        let mut ad = ad_prefix.to_vec();
        ad.extend_from_slice(&header_encoding(header.n, header.pn, &header.dh));

        // 1. A stored skipped key: use it once, then delete it.
        if let Some(pos) = self
            .skipped
            .iter()
            .position(|k| k.n == header.n && k.remote_public == header.dh)
        {
            let mk = key32(&self.skipped[pos].message_key, "skipped key")?;
            let pt = suite.decrypt(&mk, ciphertext, &ad)?;
            self.skipped.remove(pos);
            return Ok(pt);
        }

        // 2./3. Work on a copy; commit only after authentication.
        let mut next = self.clone();
        if header.dh != next.remote_public {
            if next.previous_remote.contains(&header.dh) {
                // An old chain whose key for this N is gone: used already or evicted.
                return Err(RatchetError::Replay);
            }
            if next.can_send() {
                next.skip_until(suite, limits, header.pn, true)?;
            }
            next.dh_ratchet(suite, limits, &header.dh, rng)?;
        }
        next.skip_until(suite, limits, header.n, false)?;
        let (ck, mk) = suite.kdf_ck(&key32(&next.recv_chain, "recv chain")?);
        let pt = suite.decrypt(&mk, ciphertext, &ad)?;
        next.recv_chain = ck.to_vec();
        next.nr = next.nr.saturating_add(1);
        let excess = next
            .skipped
            .len()
            .saturating_sub(limits.max_skipped_keys as usize);
        next.skipped.drain(..excess);
        *self = next;
        Ok(pt)
    }

    /// Stores the receiving chain's keys for `nr..until` (doubleratchet `skipMessageKeys`).
    fn skip_until(
        &mut self,
        suite: Suite,
        limits: &RatchetLimits,
        until: u32,
        previous_chain: bool,
    ) -> Result<(), RatchetError> {
        if until < self.nr {
            // For the message number (`previous_chain == false`) that key was used already.
            // For PN (the previous chain's length) a value below what we received cannot come
            // from an honest peer; nothing is left to skip and the tag check settles it.
            return if previous_chain {
                Ok(())
            } else {
                Err(RatchetError::Replay)
            };
        }
        let needed = u64::from(until - self.nr);
        if needed > u64::from(limits.max_skip) {
            return Err(RatchetError::TooManySkipped {
                needed,
                limit: limits.max_skip,
            });
        }
        let mut ck = key32(&self.recv_chain, "recv chain")?;
        while self.nr < until {
            let (next_ck, mk) = suite.kdf_ck(&ck);
            self.skipped.push(SkippedKey {
                remote_public: self.remote_public.clone(),
                n: self.nr,
                message_key: mk.to_vec(),
            });
            ck = next_ck;
            self.nr += 1;
        }
        self.recv_chain = ck.to_vec();
        Ok(())
    }

    fn dh_ratchet(
        &mut self,
        suite: Suite,
        limits: &RatchetLimits,
        remote: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), RatchetError> {
        let self_secret = key32(&self.self_secret, "self secret")?;
        let rk = key32(&self.root_key, "root key")?;
        let (rk, ckr) = suite.kdf_rk(&rk, &suite.dh(&self_secret, remote)?);
        let (secret, public) = suite.generate_dh(rng);
        let (rk, cks) = suite.kdf_rk(&rk, &suite.dh(&secret, remote)?);
        if !self.remote_public.is_empty() {
            self.previous_remote
                .push(std::mem::take(&mut self.remote_public));
            let excess = self
                .previous_remote
                .len()
                .saturating_sub(limits.max_previous_chains as usize);
            self.previous_remote.drain(..excess);
        }
        self.pn = self.ns;
        self.ns = 0;
        self.nr = 0;
        self.remote_public = remote.to_vec();
        self.root_key = rk.to_vec();
        self.recv_chain = ckr.to_vec();
        self.self_secret = secret.to_vec();
        self.self_public = public;
        self.send_chain = cks.to_vec();
        Ok(())
    }
}
