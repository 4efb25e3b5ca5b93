//! The node identity at rest: sealed in the node store, or the legacy plaintext `nodekey`.
//!
//! Contract ([`load_identity`]):
//! - With a passphrase, the identity lives in `node.sqlite` (`identity` table) as an Ethereum
//!   keystore v3 document (scrypt, AES-128-CTR, Keccak MAC; [`crate::keystore`]): sealed at
//!   rest. First start: a plaintext `nodekey` left by an older hush (or `hush key new`) is
//!   sealed and then removed — only after the sealed copy is committed, so no crash loses the
//!   key; with neither, a new key is drawn and sealed. A wrong passphrase is an error and
//!   changes nothing.
//! - Without a passphrase, a sealed identity is an error (it cannot be opened), and otherwise
//!   the plaintext `nodekey` is used (created if absent) — geth's behaviour — and the caller
//!   warns that the key is not sealed.
//! - The installation id (security layer, device pairing) is drawn once (a UUID v4 string, as
//!   status-go) and kept in the store's `meta` table.

use std::path::Path;

use anyhow::{bail, Context as _};
use rand_core::{CryptoRng, RngCore};

use crate::keystore::{decrypt_key, encrypt_key, ScryptParams};
use crate::nodekey::{load_or_create, parse_nodekey, NODEKEY_FILE};
use crate::store::NodeStore;

/// `meta` key of the installation id.
pub const INSTALLATION_ID_KEY: &str = "installation_id";

/// Where the identity came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// Opened from the sealed copy in the store.
    Sealed,
    /// A plaintext `nodekey` was sealed into the store (and removed).
    SealedNow,
    /// A new key was drawn and sealed.
    Created,
    /// The plaintext `nodekey` file (no passphrase given).
    Plaintext,
}

/// Loads (or creates) the node identity; see the module contract.
pub fn load_identity(
    data_dir: &Path,
    store: &NodeStore,
    passphrase: Option<&str>,
    kdf: ScryptParams,
    rng: &mut (impl RngCore + CryptoRng),
) -> anyhow::Result<([u8; 32], IdentitySource)> {
    let sealed = store.sealed_identity()?;
    let plain_path = data_dir.join(NODEKEY_FILE);
    match (sealed, passphrase) {
        (Some(json), Some(pass)) => {
            let key = decrypt_key(json.as_bytes(), pass.as_bytes())
                .context("opening the sealed identity (wrong passphrase?)")?;
            // A plaintext copy next to a sealed identity is a leftover of an interrupted
            // migration when it holds the same key: finish the migration.
            if let Ok(text) = std::fs::read_to_string(&plain_path) {
                if parse_nodekey(&text, &plain_path).ok() == Some(key.secret) {
                    remove_plaintext(&plain_path)?;
                } else {
                    bail!(
                        "{} holds a different key than the sealed identity; move it away",
                        plain_path.display()
                    );
                }
            }
            Ok((key.secret, IdentitySource::Sealed))
        }
        (Some(_), None) => bail!(
            "the identity in {} is sealed: give --passphrase-file FILE or set {}",
            data_dir.display(),
            crate::keystore::cli::PASSPHRASE_ENV
        ),
        (None, Some(pass)) => {
            let existed = plain_path.exists();
            let secret = load_or_create(data_dir, rng)?;
            let json =
                encrypt_key(&secret, pass.as_bytes(), kdf, rng).context("sealing the identity")?;
            store.set_sealed_identity(&json)?;
            remove_plaintext(&plain_path)?;
            let source = if existed {
                IdentitySource::SealedNow
            } else {
                IdentitySource::Created
            };
            Ok((secret, source))
        }
        (None, None) => Ok((load_or_create(data_dir, rng)?, IdentitySource::Plaintext)),
    }
}

fn remove_plaintext(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing plaintext {}", path.display())),
    }
}

/// The installation id kept in the store, drawn (UUID v4) and committed on first use.
pub fn installation_id(
    store: &NodeStore,
    rng: &mut (impl RngCore + CryptoRng),
) -> anyhow::Result<String> {
    if let Some(id) = store.meta(INSTALLATION_ID_KEY)? {
        if id.is_empty() {
            bail!("store: empty installation id");
        }
        return Ok(id);
    }
    let id = uuid_v4(rng);
    store.set_meta(INSTALLATION_ID_KEY, &id)?;
    Ok(id)
}

/// A random UUID v4 in its canonical text form (RFC 4122 §4.4).
pub fn uuid_v4(rng: &mut (impl RngCore + CryptoRng)) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests;
