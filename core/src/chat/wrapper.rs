//! The StatusProtocolMessage payload wrapper (status-chat.md §4): protobuf
//! `{ bytes signature = 4001; bytes payload = 4002; }`.
//!
//! Contract: [`wrap_payload`] writes status-go v0.36's `WrapMessageV1`. [`unwrap_payload`]
//! reads the Transit era alone (bytes that decode as a wrapper with a non-empty payload are
//! wrapped, anything else is bare); the node's receive paths use [`super::app::decode_app`],
//! which tells both eras' wrappers apart.

use prost::Message as _;
use secp256k1::{PublicKey, SecretKey};

use super::public::message_id;
use super::ChatError;
use crate::keccak::keccak256;
use crate::whisper::{recover_signer, sign_recoverable, SIGNATURE_LEN};

/// The wrapper (status-go v0.36 `protocol/v1` `StatusProtocolMessage`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StatusProtocolMessage {
    /// 65-byte `Sign(keccak256(payload))`, V ∈ {0,1}; may be empty.
    #[prost(bytes = "vec", tag = "4001")]
    pub signature: Vec<u8>,
    /// The Transit bytes.
    #[prost(bytes = "vec", tag = "4002")]
    pub payload: Vec<u8>,
}

/// A received chat payload after unwrapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwrapped {
    /// The Transit bytes.
    pub transit: Vec<u8>,
    /// True if the payload was a StatusProtocolMessage.
    pub wrapped: bool,
    /// Author: the wrapper signer, else the Whisper signer.
    pub author: Option<PublicKey>,
    /// Message id (`keccak256(author ‖ received bytes)`), when the author is known.
    pub id: Option<[u8; 32]>,
}

/// Wraps Transit bytes, signing `keccak256(transit)` when `sign_with` is given
/// [SG36-v1 `WrapMessageV1`].
pub fn wrap_payload(transit: &[u8], sign_with: Option<&SecretKey>) -> Vec<u8> {
    let signature = sign_with
        .map(|k| sign_recoverable(k, &keccak256(transit)).to_vec())
        .unwrap_or_default();
    StatusProtocolMessage {
        signature,
        payload: transit.to_vec(),
    }
    .encode_to_vec()
}

/// Unwraps a Whisper payload (wrapped or bare); `whisper_signer` is the envelope signer.
/// Errors only for a wrapper whose signature is present but invalid.
pub fn unwrap_payload(
    bytes: &[u8],
    whisper_signer: Option<PublicKey>,
) -> Result<Unwrapped, ChatError> {
    let (transit, wrapped, author) = match StatusProtocolMessage::decode(bytes) {
        Ok(m) if !m.payload.is_empty() => {
            let author = if m.signature.is_empty() {
                whisper_signer
            } else {
                let sig: [u8; SIGNATURE_LEN] = m
                    .signature
                    .as_slice()
                    .try_into()
                    .map_err(|_| ChatError::BadSignature)?;
                Some(
                    recover_signer(&sig, &keccak256(&m.payload))
                        .map_err(|_| ChatError::BadSignature)?,
                )
            };
            (m.payload, true, author)
        }
        _ => (bytes.to_vec(), false, whisper_signer),
    };
    let id = author.as_ref().map(|a| message_id(a, bytes));
    Ok(Unwrapped {
        transit,
        wrapped,
        author,
        id,
    })
}
