//! RLP (Recursive Length Prefix) as go-ethereum's `rlp` package reads and writes it.
//!
//! Contract:
//! - [`Rlp`] is a checked view of exactly one item. Every accessor returns a typed
//!   [`RlpError`]; nothing here panics on any input.
//! - Decoding is as strict as Go's decoder (rlpx.md §0): size prefixes must be minimal, a
//!   single byte below 0x80 must not carry a prefix, integers must not have leading zeros, a
//!   `bool` is `0x80` or `0x01`, and fixed-size byte arrays must have exactly their length.
//! - Struct-like lists are read with [`RlpList`], which hands out items one by one and lets the
//!   caller decide whether extra trailing elements are an error ([`RlpList::finish`]) or
//!   swallowed (Go's `rlp:"tail"`, EIP-8 forward compatibility).
//! - Encoding ([`Encoder`]) always emits the canonical form, so `decode(encode(x)) == x`.

use thiserror::Error;

/// Why a byte string is not the RLP value a caller asked for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RlpError {
    /// The input ends before the item its prefix announces.
    #[error("rlp: input too short: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header says are needed (header included).
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The input is empty where an item was expected.
    #[error("rlp: empty input")]
    Empty,
    /// Bytes follow the single item that was expected.
    #[error("rlp: {extra} trailing bytes after the value")]
    TrailingBytes {
        /// How many bytes follow.
        extra: usize,
    },
    /// A size prefix is not minimal (Go: "non-canonical size information").
    #[error("rlp: non-canonical size information")]
    NonCanonicalSize,
    /// An integer has leading zero bytes (Go: "non-canonical integer format").
    #[error("rlp: non-canonical integer format")]
    NonCanonicalInteger,
    /// A length does not fit in memory on this platform.
    #[error("rlp: length overflow")]
    LengthOverflow,
    /// A list was found where a byte string was expected.
    #[error("rlp: expected string, found list")]
    ExpectedString,
    /// A byte string was found where a list was expected.
    #[error("rlp: expected list, found string")]
    ExpectedList,
    /// An integer is wider than the target type.
    #[error("rlp: integer of {len} bytes does not fit in {max} bytes")]
    IntegerTooLarge {
        /// Encoded length.
        len: usize,
        /// Maximum length of the target type.
        max: usize,
    },
    /// A fixed-size byte array has the wrong length.
    #[error("rlp: expected {expected} bytes, found {found}")]
    WrongLength {
        /// Required length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// A `bool` is neither `0x80` nor `0x01`.
    #[error("rlp: invalid boolean value")]
    InvalidBool,
    /// A list has fewer elements than the structure needs.
    #[error("rlp: input list has too few elements")]
    TooFewElements,
    /// A list has more elements than the structure allows.
    #[error("rlp: input list has too many elements")]
    TooManyElements,
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("rlp: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Deepest list nesting [`Rlp::validate`] accepts; bounds recursion on hostile input. No
/// structure in the stack nests deeper than 4.
pub const MAX_DEPTH: usize = 64;

/// Kind and location of one item, parsed from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    is_list: bool,
    /// Offset of the payload from the start of the item.
    header_len: usize,
    payload_len: usize,
}

fn parse_header(buf: &[u8]) -> Result<Header, RlpError> {
    let first = *buf.first().ok_or(RlpError::Empty)?;
    let (is_list, header_len, payload_len) = match first {
        0x00..=0x7f => {
            return Ok(Header {
                is_list: false,
                header_len: 0,
                payload_len: 1,
            })
        }
        0x80..=0xb7 => {
            let len = (first - 0x80) as usize;
            if len == 1 {
                match buf.get(1) {
                    Some(&b) if b < 0x80 => return Err(RlpError::NonCanonicalSize),
                    _ => {}
                }
            }
            (false, 1, len)
        }
        0xb8..=0xbf => {
            let n = (first - 0xb7) as usize;
            let len = read_long_len(buf, n)?;
            (false, 1 + n, len)
        }
        0xc0..=0xf7 => (true, 1, (first - 0xc0) as usize),
        0xf8..=0xff => {
            let n = (first - 0xf7) as usize;
            let len = read_long_len(buf, n)?;
            (true, 1 + n, len)
        }
    };
    let needed = header_len
        .checked_add(payload_len)
        .ok_or(RlpError::LengthOverflow)?;
    if buf.len() < needed {
        return Err(RlpError::Truncated {
            needed,
            have: buf.len(),
        });
    }
    Ok(Header {
        is_list,
        header_len,
        payload_len,
    })
}

/// Reads the `n`-byte big-endian length after a long-form prefix; must be minimal and >= 56.
fn read_long_len(buf: &[u8], n: usize) -> Result<usize, RlpError> {
    let bytes = buf.get(1..1 + n).ok_or(RlpError::Truncated {
        needed: 1 + n,
        have: buf.len(),
    })?;
    if bytes[0] == 0 {
        return Err(RlpError::NonCanonicalSize);
    }
    if n > core::mem::size_of::<usize>() {
        return Err(RlpError::LengthOverflow);
    }
    let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if len < 56 {
        return Err(RlpError::NonCanonicalSize);
    }
    Ok(len)
}

/// A view of exactly one RLP item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlp<'a> {
    raw: &'a [u8],
    header: Header,
}

impl<'a> Rlp<'a> {
    /// Reads one item that must span all of `buf`.
    pub fn new(buf: &'a [u8]) -> Result<Self, RlpError> {
        let (item, rest) = Self::new_prefix(buf)?;
        if !rest.is_empty() {
            return Err(RlpError::TrailingBytes { extra: rest.len() });
        }
        Ok(item)
    }

    /// Reads the first item of `buf` and returns it with the bytes after it (Go's
    /// `rlp.NewStream(..).Decode`, which ignores what follows).
    pub fn new_prefix(buf: &'a [u8]) -> Result<(Self, &'a [u8]), RlpError> {
        let header = parse_header(buf)?;
        let end = header.header_len + header.payload_len;
        Ok((
            Rlp {
                raw: &buf[..end],
                header,
            },
            &buf[end..],
        ))
    }

    /// The item's full encoding, header included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True if the item is a list.
    pub fn is_list(&self) -> bool {
        self.header.is_list
    }

    /// The payload bytes (a string's content, or a list's concatenated items).
    pub fn payload(&self) -> &'a [u8] {
        &self.raw[self.header.header_len..]
    }

    /// The content of a byte string.
    pub fn bytes(&self) -> Result<&'a [u8], RlpError> {
        if self.header.is_list {
            return Err(RlpError::ExpectedString);
        }
        Ok(self.payload())
    }

    /// A byte string of exactly `N` bytes (Go fixed arrays).
    pub fn fixed<const N: usize>(&self) -> Result<[u8; N], RlpError> {
        let b = self.bytes()?;
        b.try_into().map_err(|_| RlpError::WrongLength {
            expected: N,
            found: b.len(),
        })
    }

    /// A canonical unsigned integer of at most 8 bytes.
    pub fn u64(&self) -> Result<u64, RlpError> {
        let b = self.uint_bytes(8)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    /// A canonical unsigned integer that must fit in a `u32`.
    pub fn u32(&self) -> Result<u32, RlpError> {
        let b = self.uint_bytes(4)?;
        Ok(b.iter().fold(0u32, |acc, &x| (acc << 8) | x as u32))
    }

    /// A canonical unsigned integer that must fit in a `u8`.
    pub fn u8(&self) -> Result<u8, RlpError> {
        let b = self.uint_bytes(1)?;
        Ok(b.first().copied().unwrap_or(0))
    }

    /// The big-endian bytes of a canonical unsigned integer of at most `max` bytes.
    pub fn uint_bytes(&self, max: usize) -> Result<&'a [u8], RlpError> {
        let b = self.bytes()?;
        if b.len() > max {
            return Err(RlpError::IntegerTooLarge { len: b.len(), max });
        }
        if b.first() == Some(&0) {
            return Err(RlpError::NonCanonicalInteger);
        }
        Ok(b)
    }

    /// A Go `bool`: `0x80` is false, `0x01` is true.
    pub fn bool(&self) -> Result<bool, RlpError> {
        match self.raw {
            [0x80] => Ok(false),
            [0x01] => Ok(true),
            _ => Err(RlpError::InvalidBool),
        }
    }

    /// The items of a list, one by one.
    pub fn list(&self) -> Result<RlpList<'a>, RlpError> {
        if !self.header.is_list {
            return Err(RlpError::ExpectedList);
        }
        Ok(RlpList {
            rest: self.payload(),
        })
    }

    /// Checks every nested item's header down to [`MAX_DEPTH`] (the ethereum/tests "invalid"
    /// cases are about nested items too).
    pub fn validate(&self) -> Result<(), RlpError> {
        self.validate_depth(0)
    }

    fn validate_depth(&self, depth: usize) -> Result<(), RlpError> {
        if !self.header.is_list {
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            return Err(RlpError::TooDeep);
        }
        let mut list = self.list()?;
        while let Some(item) = list.next_item()? {
            item.validate_depth(depth + 1)?;
        }
        Ok(())
    }
}

/// Items of a list, read in order.
#[derive(Clone, Debug)]
pub struct RlpList<'a> {
    rest: &'a [u8],
}

impl<'a> RlpList<'a> {
    /// The next item, or `None` at the end of the list.
    pub fn next_item(&mut self) -> Result<Option<Rlp<'a>>, RlpError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (item, rest) = Rlp::new_prefix(self.rest)?;
        self.rest = rest;
        Ok(Some(item))
    }

    /// The next item, which must exist (Go: "too few elements").
    pub fn item(&mut self) -> Result<Rlp<'a>, RlpError> {
        self.next_item()?.ok_or(RlpError::TooFewElements)
    }

    /// Requires the list to be exhausted (Go structs without `rlp:"tail"`).
    pub fn finish(self) -> Result<(), RlpError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(RlpError::TooManyElements)
        }
    }

    /// True when no items remain.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Counts the remaining items, checking each header.
    pub fn count(mut self) -> Result<usize, RlpError> {
        let mut n = 0;
        while self.next_item()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

/// Canonical RLP writer.
///
/// Lists are written with [`Encoder::list`], which encodes the body first and then inserts the
/// header, so callers never compute lengths by hand.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with `cap` bytes reserved.
    pub fn with_capacity(cap: usize) -> Self {
        Encoder {
            buf: Vec::with_capacity(cap),
        }
    }

    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far, borrowed.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Writes a byte string.
    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        if data.len() == 1 && data[0] < 0x80 {
            self.buf.push(data[0]);
        } else {
            write_header(&mut self.buf, 0x80, data.len());
            self.buf.extend_from_slice(data);
        }
        self
    }

    /// Writes an unsigned integer in canonical form (0 is the empty string).
    pub fn u64(&mut self, value: u64) -> &mut Self {
        let be = value.to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        self.bytes(&be[skip..])
    }

    /// Writes big-endian integer bytes, dropping leading zeros.
    pub fn uint_bytes(&mut self, be: &[u8]) -> &mut Self {
        let skip = be.iter().take_while(|&&b| b == 0).count();
        self.bytes(&be[skip..])
    }

    /// Writes a Go `bool`.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.buf.push(if value { 0x01 } else { 0x80 });
        self
    }

    /// Appends an already-encoded item verbatim.
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(encoded);
        self
    }

    /// Writes a list whose items `body` writes.
    pub fn list(&mut self, body: impl FnOnce(&mut Encoder)) -> &mut Self {
        let start = self.buf.len();
        body(self);
        let payload_len = self.buf.len() - start;
        let mut header = Vec::with_capacity(9);
        write_header(&mut header, 0xc0, payload_len);
        self.buf.splice(start..start, header);
        self
    }
}

fn write_header(out: &mut Vec<u8>, offset: u8, len: usize) {
    if len < 56 {
        out.push(offset + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        out.push(offset + 55 + (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

/// The encoding of one byte string.
pub fn encode_bytes(data: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(data.len() + 9);
    e.bytes(data);
    e.finish()
}

/// The encoding of one unsigned integer.
pub fn encode_u64(value: u64) -> Vec<u8> {
    let mut e = Encoder::with_capacity(9);
    e.u64(value);
    e.finish()
}

/// The header of a list whose items take `payload_len` bytes, written into a stack buffer
/// (for hashing a re-framed list without copying its items). Returns the buffer and the header's
/// length, [`header_len`]`(payload_len)`.
pub fn list_header(payload_len: usize) -> ([u8; 9], usize) {
    let mut out = [0u8; 9];
    if payload_len < 56 {
        out[0] = 0xc0 + payload_len as u8;
        return (out, 1);
    }
    let be = (payload_len as u64).to_be_bytes();
    let skip = be.iter().take_while(|&&b| b == 0).count();
    let n = 8 - skip;
    out[0] = 0xf7 + n as u8;
    out[1..=n].copy_from_slice(&be[skip..]);
    (out, 1 + n)
}

/// The length of the header for a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    if len < 56 {
        1
    } else {
        1 + (8 - (len as u64).leading_zeros() as usize / 8)
    }
}

#[cfg(test)]
mod tests;
