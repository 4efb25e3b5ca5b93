//! Enode URLs: `enode://<128 hex chars of the 64-byte public key>@<ip>:<tcp port>[?discport=N]`.
//!
//! Contract: [`Enode::from_str`] accepts what go-ethereum 1.9's `enode.ParseV4` accepts for the
//! URL form (an IPv4 or IPv6 literal host, a TCP port, an optional `discport` query) and answers
//! anything else with an [`EnodeError`] saying what is wrong. [`Enode`]'s `Display` writes the
//! canonical form, so `parse(format(e)) == e`. The public key is kept in its 64-byte wire form
//! (X‖Y) and must be a point on secp256k1, as geth's `parsePubkey` (`crypto.UnmarshalPubkey`)
//! demands: a key no handshake could use is refused when the URL is read, not at the first
//! dial. [`Enode::new`] does not check (its callers hold keys they derived themselves).

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

/// Why a string is not an enode URL.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EnodeError {
    /// The scheme is not `enode://`.
    #[error("enode: URL must start with enode://")]
    BadScheme,
    /// No `@` between the key and the address.
    #[error("enode: missing '@' between node key and address")]
    MissingAt,
    /// The key part is not 128 hex characters.
    #[error("enode: node key must be 128 hex characters, found {found} characters")]
    BadKeyLength {
        /// Characters found.
        found: usize,
    },
    /// The key part is not hex.
    #[error("enode: node key is not hex")]
    BadKeyHex,
    /// The key is 64 bytes of hex but not a point on secp256k1 (geth: "invalid public key").
    #[error("enode: node key is not a valid secp256k1 public key (not a point on the curve)")]
    BadKeyPoint,
    /// The host is not an IP literal (hostnames need resolution, which is IO).
    #[error("enode: host {0:?} is not an IP address")]
    BadHost(String),
    /// The port is missing or not a number in 1..=65535.
    #[error("enode: invalid TCP port {0:?}")]
    BadPort(String),
    /// The query is not `discport=N`.
    #[error("enode: invalid query {0:?}")]
    BadQuery(String),
}

/// A node's public key and TCP address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Enode {
    /// The 64-byte public key X‖Y (uncompressed SEC1 without the 0x04 prefix).
    pub public_key: [u8; 64],
    /// TCP address for RLPx.
    pub addr: SocketAddr,
    /// UDP discovery port, when it differs from the TCP port.
    pub disc_port: Option<u16>,
}

impl Enode {
    /// An enode with the given key and address.
    pub fn new(public_key: [u8; 64], addr: SocketAddr) -> Self {
        Enode {
            public_key,
            addr,
            disc_port: None,
        }
    }
}

impl fmt::Debug for Enode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Enode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "enode://{}@{}", hex::encode(self.public_key), self.addr)?;
        if let Some(p) = self.disc_port {
            write!(f, "?discport={p}")?;
        }
        Ok(())
    }
}

impl FromStr for Enode {
    type Err = EnodeError;

    fn from_str(s: &str) -> Result<Self, EnodeError> {
        let rest = s
            .trim()
            .strip_prefix("enode://")
            .ok_or(EnodeError::BadScheme)?;
        let (key_hex, addr_part) = rest.split_once('@').ok_or(EnodeError::MissingAt)?;
        if key_hex.len() != 128 {
            return Err(EnodeError::BadKeyLength {
                found: key_hex.len(),
            });
        }
        let mut public_key = [0u8; 64];
        hex::decode_to_slice(key_hex, &mut public_key).map_err(|_| EnodeError::BadKeyHex)?;
        crate::ecies::pubkey_from_wire(&public_key).map_err(|_| EnodeError::BadKeyPoint)?;
        let (host_port, query) = match addr_part.split_once('?') {
            Some((hp, q)) => (hp, Some(q)),
            None => (addr_part, None),
        };
        let (host, port) = host_port
            .rsplit_once(':')
            .ok_or_else(|| EnodeError::BadPort(String::new()))?;
        let host_clean = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host_clean
            .parse()
            .map_err(|_| EnodeError::BadHost(host.to_string()))?;
        let port: u16 = match port.parse() {
            Ok(p) if p != 0 => p,
            _ => return Err(EnodeError::BadPort(port.to_string())),
        };
        let disc_port = match query {
            None => None,
            Some(q) => {
                let v = q
                    .strip_prefix("discport=")
                    .ok_or_else(|| EnodeError::BadQuery(q.to_string()))?;
                Some(
                    v.parse::<u16>()
                        .map_err(|_| EnodeError::BadQuery(q.to_string()))?,
                )
            }
        };
        Ok(Enode {
            public_key,
            addr: SocketAddr::new(ip, port),
            disc_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "a979fb575495b8d6db44f750317d0f4622bf4c2aa3365d6af7c284339968eef29b69ad0dce72a4d8db5ebb4968de0e3bec910127f134779fbcb0cb6d3331163c";

    #[test]
    fn parse_and_format() {
        let s = format!("enode://{KEY}@127.0.0.1:30303");
        let e: Enode = s.parse().unwrap();
        assert_eq!(e.addr, "127.0.0.1:30303".parse().unwrap());
        assert_eq!(e.to_string(), s);
        let v6 = format!("enode://{KEY}@[::1]:30303?discport=30301");
        let e: Enode = v6.parse().unwrap();
        assert_eq!(e.disc_port, Some(30301));
        assert_eq!(e.to_string(), v6);
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            "http://x".parse::<Enode>().unwrap_err(),
            EnodeError::BadScheme
        );
        assert_eq!(
            format!("enode://{KEY}").parse::<Enode>().unwrap_err(),
            EnodeError::MissingAt
        );
        assert_eq!(
            "enode://abcd@1.2.3.4:1".parse::<Enode>().unwrap_err(),
            EnodeError::BadKeyLength { found: 4 }
        );
        let bad_hex = format!("enode://{}@1.2.3.4:1", "zz".repeat(64));
        assert_eq!(bad_hex.parse::<Enode>().unwrap_err(), EnodeError::BadKeyHex);
        assert!(matches!(
            format!("enode://{KEY}@host.example:1").parse::<Enode>(),
            Err(EnodeError::BadHost(_))
        ));
        assert!(matches!(
            format!("enode://{KEY}@1.2.3.4:0").parse::<Enode>(),
            Err(EnodeError::BadPort(_))
        ));
        assert!(matches!(
            format!("enode://{KEY}@1.2.3.4").parse::<Enode>(),
            Err(EnodeError::BadPort(_))
        ));
        assert!(matches!(
            format!("enode://{KEY}@1.2.3.4:5?x=1").parse::<Enode>(),
            Err(EnodeError::BadQuery(_))
        ));
    }

    /// Issue 16 item 7: a key that is 128 hex characters but no curve point is refused when
    /// parsed (it used to be accepted and to fail only at the handshake).
    #[test]
    fn key_off_the_curve_is_refused() {
        // X = 1, Y = 1: 1 ≠ 1 + 7, not on y² = x³ + 7.
        let off_curve = format!("{}01{}01", "00".repeat(31), "00".repeat(31));
        for key in [off_curve, "00".repeat(64), "ff".repeat(64)] {
            assert_eq!(
                format!("enode://{key}@127.0.0.1:30303")
                    .parse::<Enode>()
                    .unwrap_err(),
                EnodeError::BadKeyPoint,
                "{key}"
            );
        }
        // The same key with one coordinate changed is no longer on the curve either.
        let mut flipped = KEY.to_string();
        flipped.replace_range(127..128, if KEY.ends_with('c') { "d" } else { "c" });
        assert_eq!(
            format!("enode://{flipped}@127.0.0.1:30303")
                .parse::<Enode>()
                .unwrap_err(),
            EnodeError::BadKeyPoint
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = s.parse::<Enode>();
        }

        #[test]
        fn roundtrip(secret in proptest::array::uniform32(any::<u8>()), port in 1u16.., ip in any::<[u8; 4]>()) {
            let Ok(sk) = secp256k1::SecretKey::from_byte_array(&secret) else {
                return Ok(());
            };
            let full = crate::ecies::public_key(&sk).serialize_uncompressed();
            let mut pk = [0u8; 64];
            pk.copy_from_slice(&full[1..]);
            let e = Enode::new(pk, SocketAddr::new(IpAddr::from(ip), port));
            prop_assert_eq!(e.to_string().parse::<Enode>().unwrap(), e);
        }
    }
}
