//! The RLPx encryption handshake (rlpx.md §3–§4, [G-rlpx] `initiatorEncHandshake`,
//! `receiverEncHandshake`, `secrets`).
//!
//! Contract:
//! - [`Initiator`] builds the auth packet (EIP-8 by default, zero padding of 100–299 bytes as
//!   geth's `sealEIP8`; or the legacy 307-byte form on request), reads the ack (EIP-8 or legacy
//!   210 bytes) and yields [`Secrets`].
//! - [`Responder`] reads the auth (EIP-8 or legacy 307 bytes), answers in the same format and
//!   yields [`Secrets`].
//! - Readers are incremental and total: given the bytes received so far they return
//!   `Ok(None)` (need more), the decoded message plus the number of bytes it used, or a
//!   [`HandshakeError`]. Extra RLP list elements and trailing padding are tolerated (EIP-8).
//! - Constructors `with_ephemeral` take the ephemeral key and nonce explicitly so the EIP-8
//!   vectors can be reproduced; `new` draws them from the RNG.

use core::fmt;

use crate::keccak::Keccak256;
use rand_core::{CryptoRng, RngCore};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey};
use thiserror::Error;

use crate::ecies::{self, EciesError};
use crate::keccak::keccak256_concat;
use crate::rlp::{Encoder, Rlp, RlpError};

/// Nonce length (`shaLen`).
pub const NONCE_BYTES: usize = 32;
/// Recoverable signature length `R ‖ S ‖ V` (`sigLen`).
pub const SIGNATURE_BYTES: usize = 65;
/// Handshake version we send and assume for legacy packets (`authMsgV4.Version`).
pub const HANDSHAKE_VERSION: u64 = 4;
/// Legacy auth plaintext: sig 65 + keccak(ephemeral) 32 + pubkey 64 + nonce 32 + 1 = 194.
pub const LEGACY_AUTH_PLAIN_BYTES: usize = 194;
/// Legacy ack plaintext: ephemeral 64 + nonce 32 + 1 = 97.
pub const LEGACY_ACK_PLAIN_BYTES: usize = 97;
/// A legacy (pre-EIP-8) auth packet on the wire: 194 + 113 ECIES overhead.
pub const LEGACY_AUTH_PACKET_BYTES: usize = LEGACY_AUTH_PLAIN_BYTES + ecies::OVERHEAD_BYTES;
/// A legacy (pre-EIP-8) ack packet on the wire: 97 + 113 ECIES overhead.
pub const LEGACY_ACK_PACKET_BYTES: usize = LEGACY_ACK_PLAIN_BYTES + ecies::OVERHEAD_BYTES;
/// Minimum EIP-8 padding; EIP-8 requires ≥ 100 so an EIP-8 packet is always longer than a
/// legacy one. geth pads with `mrand.Intn(200) + 100` zero bytes.
pub const EIP8_MIN_PADDING_BYTES: usize = 100;
/// Number of distinct padding lengths geth draws from (`mrand.Intn(200)`).
pub const EIP8_PADDING_SPREAD_BYTES: usize = 200;
/// Length of the EIP-8 big-endian size prefix.
pub const EIP8_SIZE_PREFIX_BYTES: usize = 2;
/// Largest handshake packet any peer can send: a 2-byte prefix plus up to `u16::MAX` bytes.
/// This bounds what a session buffers before the handshake completes.
pub const MAX_HANDSHAKE_PACKET_BYTES: usize = EIP8_SIZE_PREFIX_BYTES + u16::MAX as usize;

/// Why a handshake packet was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Decryption failed (wrong recipient key, tampering, not an RLPx packet).
    #[error("handshake: {0}")]
    Ecies(#[from] EciesError),
    /// The EIP-8 size prefix is smaller than a legacy packet (geth "size underflow").
    #[error("handshake: size underflow: EIP-8 size {size} < {min}")]
    SizeUnderflow {
        /// Announced size.
        size: usize,
        /// Minimum (legacy packet length).
        min: usize,
    },
    /// The decrypted EIP-8 body is not the expected RLP list.
    #[error("handshake: bad body: {0}")]
    Rlp(#[from] RlpError),
    /// A public key in the body is not a valid curve point.
    #[error("handshake: invalid public key")]
    InvalidPublicKey,
    /// The auth signature is malformed or does not recover a key.
    #[error("handshake: invalid signature")]
    InvalidSignature,
}

/// Which packet encoding a peer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketFormat {
    /// Fixed-size pre-EIP-8 packet (307-byte auth, 210-byte ack), no size prefix.
    Legacy,
    /// EIP-8: 2-byte size prefix, RLP body, padding; the prefix is the ECIES MAC shared data.
    Eip8,
}

/// The decoded auth body (`authMsgV4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMessage {
    /// `Sign(ephemeral, token XOR nonce)`, `R ‖ S ‖ V` with V ∈ {0, 1}.
    pub signature: [u8; SIGNATURE_BYTES],
    /// The initiator's static public key.
    pub initiator_pubkey: PublicKey,
    /// The initiator nonce `Ni`.
    pub nonce: [u8; NONCE_BYTES],
    /// Announced version (4 for legacy packets; not checked, EIP-8).
    pub version: u64,
    /// Number of extra list elements after `version` (tolerated, EIP-8).
    pub extra_elements: usize,
}

/// The decoded ack body (`authRespV4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckMessage {
    /// The recipient's ephemeral public key.
    pub ephemeral_pubkey: PublicKey,
    /// The recipient nonce `Nr`.
    pub nonce: [u8; NONCE_BYTES],
    /// Announced version (4 for legacy packets; not checked, EIP-8).
    pub version: u64,
    /// Number of extra list elements after `version` (tolerated, EIP-8).
    pub extra_elements: usize,
}

/// Session secrets (rlpx.md §4): the frame cipher key, the MAC key, the two running Keccak-256
/// MAC states and the remote's static public key.
#[derive(Clone)]
pub struct Secrets {
    /// `aes-secret`: AES-256-CTR key of the frame cipher (both directions).
    pub aes: [u8; 32],
    /// `mac-secret`: AES-256 key used in the MAC update.
    pub mac: [u8; 32],
    /// Running Keccak-256 state for frames we send.
    pub egress_mac: Keccak256,
    /// Running Keccak-256 state for frames we receive.
    pub ingress_mac: Keccak256,
    /// The remote's static public key (node identity).
    pub remote_id: PublicKey,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("remote_id", &self.remote_id)
            .finish_non_exhaustive()
    }
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b.iter())) {
        *o = x ^ y;
    }
    out
}

/// Derives [`Secrets`] (rlpx.md §4, [G-rlpx] `secrets`). `auth_packet` and `ack_packet` are
/// the complete packets as sent on the wire (EIP-8 prefix included).
#[allow(clippy::too_many_arguments)]
pub fn derive_secrets(
    is_initiator: bool,
    local_ephemeral: &SecretKey,
    remote_ephemeral: &PublicKey,
    initiator_nonce: &[u8; NONCE_BYTES],
    responder_nonce: &[u8; NONCE_BYTES],
    auth_packet: &[u8],
    ack_packet: &[u8],
    remote_id: PublicKey,
) -> Secrets {
    let ephemeral_key = ecies::ecdh_x(local_ephemeral, remote_ephemeral);
    // shared-secret = keccak(ephemeral-key ‖ keccak(Nr ‖ Ni))
    let nonce_hash = keccak256_concat(&[responder_nonce, initiator_nonce]);
    let shared = keccak256_concat(&[&ephemeral_key, &nonce_hash]);
    let aes = keccak256_concat(&[&ephemeral_key, &shared]);
    let mac = keccak256_concat(&[&ephemeral_key, &aes]);
    // Initiator: egress = (mac ^ Nr) ‖ auth, ingress = (mac ^ Ni) ‖ ack; responder mirrored.
    let mut mac_ni_ack = Keccak256::new();
    mac_ni_ack.update(&xor32(&mac, initiator_nonce));
    mac_ni_ack.update(ack_packet);
    let mut mac_nr_auth = Keccak256::new();
    mac_nr_auth.update(&xor32(&mac, responder_nonce));
    mac_nr_auth.update(auth_packet);
    let (egress_mac, ingress_mac) = if is_initiator {
        (mac_nr_auth, mac_ni_ack)
    } else {
        (mac_ni_ack, mac_nr_auth)
    };
    Secrets {
        aes,
        mac,
        egress_mac,
        ingress_mac,
        remote_id,
    }
}

/// Seals an EIP-8 packet: `size ‖ ECIES(remote, body ‖ zero padding, s2 = size)`.
fn seal_eip8(rng: &mut (impl RngCore + CryptoRng), remote: &PublicKey, body: Vec<u8>) -> Vec<u8> {
    let pad = EIP8_MIN_PADDING_BYTES + (rng.next_u32() as usize % EIP8_PADDING_SPREAD_BYTES);
    let mut plain = body;
    plain.resize(plain.len() + pad, 0);
    // Bodies are a few hundred bytes, far below u16::MAX.
    let size = u16::try_from(plain.len() + ecies::OVERHEAD_BYTES).unwrap_or(u16::MAX);
    let prefix = size.to_be_bytes();
    let mut out = prefix.to_vec();
    out.extend(ecies::encrypt(rng, remote, &plain, &prefix));
    out
}

/// Reads one handshake packet (rlpx.md §3.3): `Ok(None)` until enough bytes are buffered,
/// then the plaintext, its format and the packet length.
fn read_packet(
    secret: &SecretKey,
    buf: &[u8],
    legacy_len: usize,
) -> Result<Option<(Vec<u8>, PacketFormat, usize)>, HandshakeError> {
    let Some(first) = buf.get(..legacy_len) else {
        return Ok(None);
    };
    if let Ok(plain) = ecies::decrypt(secret, first, &[]) {
        return Ok(Some((plain, PacketFormat::Legacy, legacy_len)));
    }
    let size = u16::from_be_bytes([first[0], first[1]]) as usize;
    if size < legacy_len {
        return Err(HandshakeError::SizeUnderflow {
            size,
            min: legacy_len,
        });
    }
    let total = EIP8_SIZE_PREFIX_BYTES + size;
    let Some(packet) = buf.get(..total) else {
        return Ok(None);
    };
    let (prefix, body) = packet.split_at(EIP8_SIZE_PREFIX_BYTES);
    let plain = ecies::decrypt(secret, body, prefix)?;
    Ok(Some((plain, PacketFormat::Eip8, total)))
}

fn pubkey(bytes: &[u8]) -> Result<PublicKey, HandshakeError> {
    ecies::pubkey_from_wire(bytes).map_err(|_| HandshakeError::InvalidPublicKey)
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

/// Decodes an auth plaintext in either format.
pub fn decode_auth(plain: &[u8], format: PacketFormat) -> Result<AuthMessage, HandshakeError> {
    match format {
        PacketFormat::Legacy => {
            // sig(65) ‖ keccak(ephemeral)(32, skipped as geth does) ‖ pubkey(64) ‖ nonce(32) ‖ 0
            if plain.len() != LEGACY_AUTH_PLAIN_BYTES {
                return Err(RlpError::WrongLength {
                    expected: LEGACY_AUTH_PLAIN_BYTES,
                    found: plain.len(),
                }
                .into());
            }
            Ok(AuthMessage {
                signature: fixed(&plain[..65]),
                initiator_pubkey: pubkey(&plain[97..161])?,
                nonce: fixed(&plain[161..193]),
                version: HANDSHAKE_VERSION,
                extra_elements: 0,
            })
        }
        PacketFormat::Eip8 => {
            // RLP stream decode of the first value; padding after it is ignored.
            let (item, _padding) = Rlp::new_prefix(plain)?;
            let mut list = item.list()?;
            let signature = list.item()?.fixed::<SIGNATURE_BYTES>()?;
            let initiator_pubkey = pubkey(&list.item()?.fixed::<64>()?)?;
            let nonce = list.item()?.fixed::<NONCE_BYTES>()?;
            let version = list.item()?.u64()?;
            let extra_elements = list.count()?; // rlp:"tail"
            Ok(AuthMessage {
                signature,
                initiator_pubkey,
                nonce,
                version,
                extra_elements,
            })
        }
    }
}

/// Decodes an ack plaintext in either format.
pub fn decode_ack(plain: &[u8], format: PacketFormat) -> Result<AckMessage, HandshakeError> {
    match format {
        PacketFormat::Legacy => {
            if plain.len() != LEGACY_ACK_PLAIN_BYTES {
                return Err(RlpError::WrongLength {
                    expected: LEGACY_ACK_PLAIN_BYTES,
                    found: plain.len(),
                }
                .into());
            }
            Ok(AckMessage {
                ephemeral_pubkey: pubkey(&plain[..64])?,
                nonce: fixed(&plain[64..96]),
                version: HANDSHAKE_VERSION,
                extra_elements: 0,
            })
        }
        PacketFormat::Eip8 => {
            let (item, _padding) = Rlp::new_prefix(plain)?;
            let mut list = item.list()?;
            let ephemeral_pubkey = pubkey(&list.item()?.fixed::<64>()?)?;
            let nonce = list.item()?.fixed::<NONCE_BYTES>()?;
            let version = list.item()?.u64()?;
            let extra_elements = list.count()?;
            Ok(AckMessage {
                ephemeral_pubkey,
                nonce,
                version,
                extra_elements,
            })
        }
    }
}

/// The handshake from the dialing side.
pub struct Initiator {
    local: SecretKey,
    remote: PublicKey,
    ephemeral: SecretKey,
    nonce: [u8; NONCE_BYTES],
    auth: AuthMessage,
    auth_packet: Vec<u8>,
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake to `remote` with a fresh ephemeral key and nonce from `rng`.
    pub fn new(rng: &mut (impl RngCore + CryptoRng), local: SecretKey, remote: PublicKey) -> Self {
        let ephemeral = ecies::random_secret_key(rng);
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill_bytes(&mut nonce);
        Self::with_ephemeral(rng, local, remote, ephemeral, nonce)
    }

    /// Starts a handshake to `remote` sending the auth in `format` (geth always sends EIP-8;
    /// [`PacketFormat::Legacy`] talks to pre-EIP-8 peers and exercises their code path).
    pub fn new_with_format(
        rng: &mut (impl RngCore + CryptoRng),
        local: SecretKey,
        remote: PublicKey,
        format: PacketFormat,
    ) -> Self {
        let ephemeral = ecies::random_secret_key(rng);
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill_bytes(&mut nonce);
        Self::with_ephemeral_format(rng, local, remote, ephemeral, nonce, format)
    }

    /// Starts a handshake with an explicit ephemeral key and nonce; `rng` still supplies the
    /// EIP-8 padding length and the ECIES ephemeral key and IV.
    pub fn with_ephemeral(
        rng: &mut (impl RngCore + CryptoRng),
        local: SecretKey,
        remote: PublicKey,
        ephemeral: SecretKey,
        nonce: [u8; NONCE_BYTES],
    ) -> Self {
        Self::with_ephemeral_format(rng, local, remote, ephemeral, nonce, PacketFormat::Eip8)
    }

    /// As [`Initiator::with_ephemeral`], sending the auth in `format`.
    pub fn with_ephemeral_format(
        rng: &mut (impl RngCore + CryptoRng),
        local: SecretKey,
        remote: PublicKey,
        ephemeral: SecretKey,
        nonce: [u8; NONCE_BYTES],
        format: PacketFormat,
    ) -> Self {
        // token = ECDH(static, remote static); sig = Sign(ephemeral, token XOR Ni).
        let token = ecies::ecdh_x(&local, &remote);
        let digest = xor32(&token, &nonce);
        let sig = ecies::secp().sign_ecdsa_recoverable(&Message::from_digest(digest), &ephemeral);
        let (recid, rs) = sig.serialize_compact();
        let mut signature = [0u8; SIGNATURE_BYTES];
        signature[..64].copy_from_slice(&rs);
        signature[64] = i32::from(recid) as u8;
        let auth = AuthMessage {
            signature,
            initiator_pubkey: ecies::public_key(&local),
            nonce,
            version: HANDSHAKE_VERSION,
            extra_elements: 0,
        };
        let auth_packet = match format {
            PacketFormat::Eip8 => seal_eip8(rng, &remote, encode_auth_body(&auth)),
            PacketFormat::Legacy => {
                ecies::encrypt(rng, &remote, &encode_legacy_auth(&auth, &ephemeral), &[])
            }
        };
        Initiator {
            local,
            remote,
            ephemeral,
            nonce,
            auth,
            auth_packet,
        }
    }

    /// The auth body we sent.
    pub fn auth_message(&self) -> &AuthMessage {
        &self.auth
    }

    /// The auth packet to write to the socket.
    pub fn auth_packet(&self) -> &[u8] {
        &self.auth_packet
    }

    /// The key being dialed.
    pub fn remote(&self) -> &PublicKey {
        &self.remote
    }

    /// Reads the ack from the bytes received so far: `Ok(None)` if more are needed, else the
    /// ack, its format and how many bytes of `buf` it used.
    pub fn read_ack(
        &self,
        buf: &[u8],
    ) -> Result<Option<(AckMessage, PacketFormat, usize)>, HandshakeError> {
        let Some((plain, format, used)) = read_packet(&self.local, buf, LEGACY_ACK_PACKET_BYTES)?
        else {
            return Ok(None);
        };
        Ok(Some((decode_ack(&plain, format)?, format, used)))
    }

    /// Completes the handshake with the ack and its packet bytes.
    pub fn finish(self, ack: &AckMessage, ack_packet: &[u8]) -> Secrets {
        derive_secrets(
            true,
            &self.ephemeral,
            &ack.ephemeral_pubkey,
            &self.nonce,
            &ack.nonce,
            &self.auth_packet,
            ack_packet,
            self.remote,
        )
    }
}

/// Encodes the fixed 194-byte pre-EIP-8 auth plaintext (rlpx.md §3.1, [G-rlpx] `sealPlain`):
/// `sig(65) ‖ keccak256(ephemeral-pubk)(32) ‖ initiator-pubk(64) ‖ Ni(32) ‖ 0x00`.
pub fn encode_legacy_auth(auth: &AuthMessage, ephemeral: &SecretKey) -> Vec<u8> {
    let mut plain = Vec::with_capacity(LEGACY_AUTH_PLAIN_BYTES);
    plain.extend_from_slice(&auth.signature);
    plain.extend_from_slice(&crate::keccak::keccak256(&ecies::pubkey_to_wire(
        &ecies::public_key(ephemeral),
    )));
    plain.extend_from_slice(&ecies::pubkey_to_wire(&auth.initiator_pubkey));
    plain.extend_from_slice(&auth.nonce);
    plain.push(0); // "token known" flag, always 0 in geth
    plain
}

/// Encodes `[sig, initiator-pubk, Ni, version]`.
pub fn encode_auth_body(auth: &AuthMessage) -> Vec<u8> {
    let mut e = Encoder::new();
    e.list(|e| {
        e.bytes(&auth.signature)
            .bytes(&ecies::pubkey_to_wire(&auth.initiator_pubkey))
            .bytes(&auth.nonce)
            .u64(auth.version);
    });
    e.finish()
}

/// Encodes `[recipient-ephemeral-pubk, Nr, version]`.
pub fn encode_ack_body(ack: &AckMessage) -> Vec<u8> {
    let mut e = Encoder::new();
    e.list(|e| {
        e.bytes(&ecies::pubkey_to_wire(&ack.ephemeral_pubkey))
            .bytes(&ack.nonce)
            .u64(ack.version);
    });
    e.finish()
}

/// The handshake from the listening side.
pub struct Responder {
    local: SecretKey,
    ephemeral: SecretKey,
    nonce: [u8; NONCE_BYTES],
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder {
    /// A responder with a fresh ephemeral key and nonce from `rng`.
    pub fn new(rng: &mut (impl RngCore + CryptoRng), local: SecretKey) -> Self {
        let ephemeral = ecies::random_secret_key(rng);
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill_bytes(&mut nonce);
        Self::with_ephemeral(local, ephemeral, nonce)
    }

    /// A responder with an explicit ephemeral key and nonce.
    pub fn with_ephemeral(
        local: SecretKey,
        ephemeral: SecretKey,
        nonce: [u8; NONCE_BYTES],
    ) -> Self {
        Responder {
            local,
            ephemeral,
            nonce,
        }
    }

    /// Reads the auth from the bytes received so far: `Ok(None)` if more are needed, else the
    /// auth, its format and how many bytes of `buf` it used.
    pub fn read_auth(
        &self,
        buf: &[u8],
    ) -> Result<Option<(AuthMessage, PacketFormat, usize)>, HandshakeError> {
        let Some((plain, format, used)) = read_packet(&self.local, buf, LEGACY_AUTH_PACKET_BYTES)?
        else {
            return Ok(None);
        };
        Ok(Some((decode_auth(&plain, format)?, format, used)))
    }

    /// Builds the ack packet for `auth`, in the same format the initiator used.
    pub fn ack_packet(
        &self,
        rng: &mut (impl RngCore + CryptoRng),
        auth: &AuthMessage,
        format: PacketFormat,
    ) -> Vec<u8> {
        let ack = AckMessage {
            ephemeral_pubkey: ecies::public_key(&self.ephemeral),
            nonce: self.nonce,
            version: HANDSHAKE_VERSION,
            extra_elements: 0,
        };
        match format {
            PacketFormat::Eip8 => seal_eip8(rng, &auth.initiator_pubkey, encode_ack_body(&ack)),
            PacketFormat::Legacy => {
                let mut plain = Vec::with_capacity(LEGACY_ACK_PLAIN_BYTES);
                plain.extend_from_slice(&ecies::pubkey_to_wire(&ack.ephemeral_pubkey));
                plain.extend_from_slice(&ack.nonce);
                plain.push(0); // "token known" flag, always 0 in geth
                ecies::encrypt(rng, &auth.initiator_pubkey, &plain, &[])
            }
        }
    }

    /// Recovers the initiator's ephemeral key from the auth signature
    /// (`Ecrecover(token XOR Ni, sig)`, [G-rlpx] `handleAuthMsg`).
    pub fn recover_ephemeral(&self, auth: &AuthMessage) -> Result<PublicKey, HandshakeError> {
        let token = ecies::ecdh_x(&self.local, &auth.initiator_pubkey);
        let digest = xor32(&token, &auth.nonce);
        let recid = RecoveryId::try_from(i32::from(auth.signature[64]))
            .map_err(|_| HandshakeError::InvalidSignature)?;
        let sig = RecoverableSignature::from_compact(&auth.signature[..64], recid)
            .map_err(|_| HandshakeError::InvalidSignature)?;
        ecies::secp()
            .recover_ecdsa(&Message::from_digest(digest), &sig)
            .map_err(|_| HandshakeError::InvalidSignature)
    }

    /// Completes the handshake given the auth (and its packet bytes) and the ack we sent.
    pub fn finish(
        self,
        auth: &AuthMessage,
        auth_packet: &[u8],
        ack_packet: &[u8],
    ) -> Result<Secrets, HandshakeError> {
        let remote_ephemeral = self.recover_ephemeral(auth)?;
        Ok(derive_secrets(
            false,
            &self.ephemeral,
            &remote_ephemeral,
            &auth.nonce,
            &self.nonce,
            auth_packet,
            ack_packet,
            auth.initiator_pubkey,
        ))
    }
}

#[cfg(test)]
mod tests;
