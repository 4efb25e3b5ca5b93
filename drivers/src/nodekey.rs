//! The node key file: `DATA_DIR/nodekey`, the node's secp256k1 secret key.
//!
//! Contract: the format is go-ethereum's (`p2p/node` `nodekey`): exactly 64 hex characters
//! (surrounding whitespace tolerated on read), no `0x` prefix. [`load_or_create`] creates the
//! data directory if needed, creates the key from the caller's RNG on first use (written to a
//! temporary file with mode 0600, then renamed, so a crash never leaves half a key) and returns
//! the same key on every later call. A file that is present but not a valid key is an error,
//! never silently replaced: it is the node's identity.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::{CryptoRng, RngCore};
use thiserror::Error;

/// File name of the node key inside the data directory (the name geth uses).
pub const NODEKEY_FILE: &str = "nodekey";

/// How many times to draw a fresh 32-byte string before giving up on finding a valid secp256k1
/// scalar. A uniformly random string is invalid with probability about 2^-128, so reaching this
/// means the RNG is broken.
const MAX_KEY_DRAWS: usize = 16;

/// Why the node key could not be loaded or created.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeKeyError {
    /// Filesystem failure (creating the directory, reading or writing the file).
    #[error("node key {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file exists but is not 64 hex characters.
    #[error("node key {path}: expected 64 hex characters")]
    BadFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file holds 32 bytes that are not a valid secp256k1 secret key.
    #[error("node key {path}: not a valid secp256k1 secret key")]
    InvalidKey {
        /// The file.
        path: PathBuf,
    },
    /// The RNG never produced a valid key.
    #[error("could not draw a valid secp256k1 secret key from the RNG")]
    RngExhausted,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NodeKeyError + '_ {
    move |source| NodeKeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Parses a node key file's contents.
pub fn parse_nodekey(text: &str, path: &Path) -> Result<[u8; 32], NodeKeyError> {
    let hex_str = text.trim();
    let mut key = [0u8; 32];
    if hex_str.len() != 64 || hex::decode_to_slice(hex_str, &mut key).is_err() {
        return Err(NodeKeyError::BadFormat {
            path: path.to_path_buf(),
        });
    }
    secp256k1::SecretKey::from_slice(&key).map_err(|_| NodeKeyError::InvalidKey {
        path: path.to_path_buf(),
    })?;
    Ok(key)
}

/// Loads `data_dir/nodekey`, creating the directory and the key (from `rng`) if absent.
pub fn load_or_create(
    data_dir: &Path,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<[u8; 32], NodeKeyError> {
    fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let path = data_dir.join(NODEKEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => return parse_nodekey(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    let key = draw_key(rng)?;
    write_nodekey(data_dir, &key)?;
    Ok(key)
}

/// Writes `key` as `data_dir/nodekey` in geth's format (mode 0600; a temporary file, then
/// renamed, so a crash never leaves half a key). Replaces a file already there: callers check.
pub fn write_nodekey(data_dir: &Path, key: &[u8; 32]) -> Result<(), NodeKeyError> {
    fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let path = data_dir.join(NODEKEY_FILE);
    let tmp = data_dir.join(format!("{NODEKEY_FILE}.tmp"));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Secret material: owner read/write only, as geth does.
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp).map_err(io_err(&tmp))?;
    file.write_all(hex::encode(key).as_bytes())
        .map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_err(&path))
}

fn draw_key(rng: &mut (impl RngCore + CryptoRng)) -> Result<[u8; 32], NodeKeyError> {
    for _ in 0..MAX_KEY_DRAWS {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        if secp256k1::SecretKey::from_slice(&key).is_ok() {
            return Ok(key);
        }
    }
    Err(NodeKeyError::RngExhausted)
}

#[cfg(test)]
mod tests;
