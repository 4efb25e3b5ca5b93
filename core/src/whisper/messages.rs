//! The Messages packet body (code 1; also the list form of code 127): an RLP list of
//! envelopes. Shared by the machine and the mailserver code.

use super::envelope::Envelope;
use super::WhisperError;
use crate::keccak::keccak256;
use crate::rlp::{Encoder, Rlp};

/// Decodes a Messages packet body into envelopes with their hashes (keccak256 of each raw
/// item, which equals Go's hash because decoding is strict).
pub fn decode_messages_hashed(payload: &[u8]) -> Result<Vec<(Envelope, [u8; 32])>, WhisperError> {
    let item = Rlp::new(payload)?;
    let mut l = item.list()?;
    let mut out = Vec::new();
    while let Some(e) = l.next_item()? {
        out.push((Envelope::from_rlp(&e)?, keccak256(e.raw())));
    }
    Ok(out)
}

/// Decodes a Messages packet body: an RLP list of 5-field envelopes (possibly empty).
pub fn decode_messages(payload: &[u8]) -> Result<Vec<Envelope>, WhisperError> {
    let item = Rlp::new(payload)?;
    let mut l = item.list()?;
    let mut out = Vec::new();
    while let Some(e) = l.next_item()? {
        out.push(Envelope::from_rlp(&e)?);
    }
    Ok(out)
}

/// Encodes a Messages packet body.
pub fn encode_messages(envelopes: &[Envelope]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.list(|e| {
        for env in envelopes {
            env.encode_to(e);
        }
    });
    e.finish()
}
