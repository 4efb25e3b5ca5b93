//! The RLPx frame codec (rlpx.md §5, [G-rlpx] `rlpxFrameRW`).
//!
//! Contract:
//! - [`FrameCodec::seal`] appends one framed message
//!   `header-ct(16) ‖ header-mac(16) ‖ frame-ct(16·k) ‖ frame-mac(16)` to an output buffer.
//! - [`FrameCodec::open`] is incremental: it takes the caller's receive buffer, removes the
//!   bytes of at most one complete frame and returns `Ok(Some((code, payload)))`, `Ok(None)`
//!   when more bytes are needed, or a [`FrameError`]. [`FrameCodec::open_prefix`] is the same
//!   on a slice: it reports how many bytes it consumed instead of removing them. The header MAC is checked before anything
//!   is decrypted and the announced size is checked against the limit before the body is
//!   awaited, so a peer can make us buffer at most one maximum frame plus its overhead.
//! - After an error the codec's MAC and cipher states are out of step with the peer's; the
//!   connection must be closed.
//! - Snappy is not applied here: payloads are passed through as given (the session compresses).

use crate::keccak::Keccak256;
use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes256;
use thiserror::Error;

use super::handshake::Secrets;
use crate::rlp::{encode_u64, Rlp, RlpError};

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// Largest frame-size the 3-byte header can express (geth writes 24 bits and errors above).
pub const MAX_FRAME_SIZE_BYTES: usize = 0xFF_FFFF;
/// Frame header: size(3) ‖ header-data ‖ zero padding, 16 bytes.
pub const HEADER_BYTES: usize = 16;
/// Length of the header MAC and the frame MAC.
pub const MAC_BYTES: usize = 16;
/// Frames are zero-padded to a multiple of the AES block.
pub const BLOCK_BYTES: usize = 16;
/// `header-data` = RLP `[capability-id = 0, context-id = 0]`; geth always writes these bytes
/// and ignores them on receipt (no chunked frames).
pub const HEADER_DATA: [u8; 3] = [0xc2, 0x80, 0x80];

/// An opened frame: message code and (still compressed, if the session uses snappy) payload.
pub type Frame = (u64, Vec<u8>);

/// Why a frame could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header MAC does not match (geth "bad header MAC").
    #[error("bad header MAC")]
    BadHeaderMac,
    /// The frame MAC does not match (geth "bad frame MAC").
    #[error("bad frame MAC")]
    BadFrameMac,
    /// A frame is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Frame size (message code + payload).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The frame does not start with a valid RLP message code.
    #[error("bad message code: {0}")]
    BadMessageCode(RlpError),
}

/// The running MAC hash. Tests can substitute geth's fake hash (`TestRLPXFrameFake`).
// The fake variant exists only in tests; boxing the real state would cost an allocation.
#[cfg_attr(test, allow(clippy::large_enum_variant))]
#[derive(Clone)]
enum MacHash {
    Keccak(Keccak256),
    /// Write ignores its input; Sum always returns 32 bytes of 0x01.
    #[cfg(test)]
    Fake,
}

impl MacHash {
    fn update(&mut self, data: &[u8]) {
        match self {
            MacHash::Keccak(k) => k.update(data),
            #[cfg(test)]
            MacHash::Fake => {}
        }
    }

    /// Digest of everything written so far, without finalising the running state.
    fn digest(&self) -> [u8; 32] {
        match self {
            MacHash::Keccak(k) => k.digest(),
            #[cfg(test)]
            MacHash::Fake => [1u8; 32],
        }
    }
}

/// One direction's MAC: the running hash and the AES-256 block cipher keyed with mac-secret.
#[derive(Clone)]
struct MacState {
    hash: MacHash,
    cipher: Aes256,
    /// Digest of `hash` as it stands, when already computed. Every `updateMAC` ends with the
    /// digest of the state it leaves, and the next frame's header MAC starts from the digest of
    /// that same state: keeping it saves one Keccak-f permutation of four per frame.
    digest: Option<[u8; 32]>,
}

impl MacState {
    fn new(hash: MacHash, cipher: Aes256) -> Self {
        MacState {
            hash,
            cipher,
            digest: None,
        }
    }

    /// `updateMAC`: `hash.update(AES(digest[..16]) XOR seed[..16])`, return `digest[..16]`.
    fn update_mac(&mut self, seed: &[u8]) -> [u8; MAC_BYTES] {
        let digest = match self.digest {
            Some(d) => d,
            None => self.hash.digest(),
        };
        self.update_mac_with(&digest, seed)
    }

    /// `updateMAC` given the digest of the current state (saves one Keccak finalisation when
    /// the caller already has it, as for the frame MAC whose seed is that digest).
    fn update_mac_with(&mut self, digest: &[u8; 32], seed: &[u8]) -> [u8; MAC_BYTES] {
        let mut block = aes::Block::clone_from_slice(&digest[..16]);
        self.cipher.encrypt_block(&mut block);
        for (b, s) in block.iter_mut().zip(seed.iter()) {
            *b ^= s;
        }
        self.hash.update(&block);
        let digest = self.hash.digest();
        self.digest = Some(digest);
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&digest[..MAC_BYTES]);
        out
    }

    /// Absorbs a frame ciphertext and returns the frame MAC (seed = the digest after it).
    fn frame_mac(&mut self, frame_ct: &[u8]) -> [u8; MAC_BYTES] {
        self.hash.update(frame_ct);
        self.digest = None;
        // seed = digest of the state, which is also the digest `updateMAC` starts from.
        let seed = self.hash.digest();
        self.update_mac_with(&seed, &seed)
    }
}

/// Compares a computed MAC with a received one without an early exit (geth `hmac.Equal`).
fn ct_eq16(a: &[u8; MAC_BYTES], b: &[u8]) -> bool {
    b.len() == MAC_BYTES
        && a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn padded(len: usize) -> usize {
    len.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

/// A bidirectional RLPx frame codec for one connection.
pub struct FrameCodec {
    enc: Aes256Ctr,
    dec: Aes256Ctr,
    egress: MacState,
    ingress: MacState,
    max_frame_size: usize,
    /// Size of the frame whose header has been verified and consumed, awaiting its body.
    pending_frame_size: Option<usize>,
}

impl core::fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameCodec")
            .field("max_frame_size", &self.max_frame_size)
            .field("pending_frame_size", &self.pending_frame_size)
            .finish_non_exhaustive()
    }
}

impl FrameCodec {
    /// A codec from handshake secrets. `max_frame_size` (frame-data bytes: code + payload) is
    /// clamped to [`MAX_FRAME_SIZE_BYTES`]; larger frames are refused in both directions.
    pub fn new(secrets: Secrets, max_frame_size: usize) -> Self {
        Self::with_hashes(
            &secrets.aes,
            &secrets.mac,
            MacHash::Keccak(secrets.egress_mac),
            MacHash::Keccak(secrets.ingress_mac),
            max_frame_size,
        )
    }

    fn with_hashes(
        aes_secret: &[u8; 32],
        mac_secret: &[u8; 32],
        egress: MacHash,
        ingress: MacHash,
        max_frame_size: usize,
    ) -> Self {
        // Both directions: AES-256-CTR, key aes-secret, IV zero (rlpx.md §5).
        let iv = [0u8; 16];
        let cipher = Aes256::new(mac_secret.into());
        FrameCodec {
            enc: Aes256Ctr::new(aes_secret.into(), &iv.into()),
            dec: Aes256Ctr::new(aes_secret.into(), &iv.into()),
            egress: MacState::new(egress, cipher.clone()),
            ingress: MacState::new(ingress, cipher),
            max_frame_size: max_frame_size.min(MAX_FRAME_SIZE_BYTES),
            pending_frame_size: None,
        }
    }

    /// A codec whose MAC hashes are geth's test fake (constant 0x01 digests).
    #[cfg(test)]
    pub(crate) fn new_fake_mac(aes_secret: &[u8; 32], mac_secret: &[u8; 32]) -> Self {
        Self::with_hashes(
            aes_secret,
            mac_secret,
            MacHash::Fake,
            MacHash::Fake,
            MAX_FRAME_SIZE_BYTES,
        )
    }

    /// Changes the frame-size limit (clamped to [`MAX_FRAME_SIZE_BYTES`]); a frame whose header
    /// was already accepted is still read under the old limit.
    pub fn set_max_frame_size(&mut self, max_frame_size: usize) {
        self.max_frame_size = max_frame_size.min(MAX_FRAME_SIZE_BYTES);
    }

    /// The frame-size limit in force.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Appends one framed message to `out`. Errors (and writes nothing) if
    /// `RLP(code) ‖ payload` exceeds the limit.
    pub fn seal(
        &mut self,
        msg_code: u64,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        let code = encode_u64(msg_code);
        let size = code.len() + payload.len();
        if size > self.max_frame_size {
            return Err(FrameError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        let mut header = [0u8; HEADER_BYTES];
        header[..3].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
        header[3..6].copy_from_slice(&HEADER_DATA);
        self.enc.apply_keystream(&mut header);
        let header_mac = self.egress.update_mac(&header);
        out.extend_from_slice(&header);
        out.extend_from_slice(&header_mac);

        let start = out.len();
        out.extend_from_slice(&code);
        out.extend_from_slice(payload);
        out.resize(start + padded(size), 0);
        self.enc.apply_keystream(&mut out[start..]);
        let frame_mac = self.egress.frame_mac(&out[start..]);
        out.extend_from_slice(&frame_mac);
        Ok(())
    }

    /// Opens at most one frame from the front of `buf`, removing the bytes it used (a verified
    /// header is consumed even if its body has not fully arrived). [`FrameCodec::open_prefix`]
    /// does the same without moving the rest of the buffer.
    pub fn open(&mut self, buf: &mut Vec<u8>) -> Result<Option<(u64, Vec<u8>)>, FrameError> {
        let (used, frame) = self.open_prefix(buf)?;
        buf.drain(..used);
        Ok(frame)
    }

    /// Opens at most one frame from the front of `buf` in place: returns how many bytes at the
    /// front were consumed (the caller skips them; a verified header counts even if its body
    /// has not fully arrived, as its bytes are not needed again) and the frame, if complete.
    /// The frame's bytes are decrypted in place. Lets a reader keep a read offset into its
    /// buffer instead of shifting the buffer after every frame.
    pub fn open_prefix(&mut self, buf: &mut [u8]) -> Result<(usize, Option<Frame>), FrameError> {
        let (used, size) = match self.pending_frame_size {
            Some(size) => (0, size),
            None => {
                let Some(head) = buf.get(..HEADER_BYTES + MAC_BYTES) else {
                    return Ok((0, None));
                };
                let (header_ct, mac) = head.split_at(HEADER_BYTES);
                let expected = self.ingress.update_mac(header_ct);
                if !ct_eq16(&expected, mac) {
                    return Err(FrameError::BadHeaderMac);
                }
                let mut header = [0u8; HEADER_BYTES];
                header.copy_from_slice(header_ct);
                self.dec.apply_keystream(&mut header);
                let size = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                if size > self.max_frame_size {
                    return Err(FrameError::FrameTooLarge {
                        size,
                        max: self.max_frame_size,
                    });
                }
                self.pending_frame_size = Some(size);
                (HEADER_BYTES + MAC_BYTES, size)
            }
        };
        let body_len = padded(size);
        let Some(body) = buf
            .get_mut(used..)
            .and_then(|rest| rest.get_mut(..body_len + MAC_BYTES))
        else {
            return Ok((used, None));
        };
        let (frame_ct, mac) = body.split_at_mut(body_len);
        let expected = self.ingress.frame_mac(frame_ct);
        if !ct_eq16(&expected, mac) {
            return Err(FrameError::BadFrameMac);
        }
        // Verified: decrypt in place and copy the payload out once.
        self.pending_frame_size = None;
        let frame = &mut frame_ct[..size.min(body_len)];
        self.dec.apply_keystream(frame);
        // The padding's keystream must be consumed too (one continuous CTR stream).
        let mut pad = [0u8; BLOCK_BYTES];
        let pad_len = body_len - frame.len();
        self.dec
            .apply_keystream(&mut pad[..pad_len.min(BLOCK_BYTES)]);
        let (code, payload) = Rlp::new_prefix(frame)
            .and_then(|(item, _)| Ok((item.u64()?, item.raw().len())))
            .map(|(code, code_len)| (code, frame.get(code_len..).unwrap_or(&[]).to_vec()))
            .map_err(FrameError::BadMessageCode)?;
        Ok((used + body_len + MAC_BYTES, Some((code, payload))))
    }
}

#[cfg(test)]
mod tests;
