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
//! - Once a data directory holds an identity, [`IDENTITY_MARKER_FILE`] names it (its address,
//!   public). A directory with the marker but no identity lost it (a truncated or replaced
//!   `node.sqlite`, a deleted `nodekey`): then no new key is drawn unless the caller passes
//!   `replace_identity` (`hush key new --replace-identity`); the error says how to restore.
//!   The marker lives outside `node.sqlite` so that damaging the store alone cannot hide that
//!   an identity existed.
//! - The installation id (security layer, device pairing) is drawn once (a UUID v4 string, as
//!   status-go) and kept in the store's `meta` table.

use std::path::Path;

use anyhow::{bail, Context as _};
use rand_core::{CryptoRng, RngCore};

use crate::keystore::{decrypt_key, encrypt_key, ScryptParams};
use crate::nodekey::{load_or_create, parse_nodekey, NODEKEY_FILE};
use crate::store::NodeStore;

/// File in the data directory naming the identity it holds, as `0x<address>` and a newline
/// (public, not secret). Written whenever an identity is found, created, sealed or imported;
/// hush never removes it. See the module contract.
pub const IDENTITY_MARKER_FILE: &str = "identity-address";

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

/// Loads (or creates) the node identity; see the module contract. `replace_identity` allows
/// drawing a new key in a data directory whose identity is lost (see [`IDENTITY_MARKER_FILE`]).
pub fn load_identity(
    data_dir: &Path,
    store: &NodeStore,
    passphrase: Option<&str>,
    kdf: ScryptParams,
    replace_identity: bool,
    rng: &mut (impl RngCore + CryptoRng),
) -> anyhow::Result<([u8; 32], IdentitySource)> {
    let sealed = store.sealed_identity()?;
    let plain_path = data_dir.join(NODEKEY_FILE);
    if sealed.is_none() && !plain_path.exists() && !replace_identity {
        refuse_lost_identity(data_dir)?;
    }
    let (secret, source) = load_identity_unchecked(data_dir, store, sealed, passphrase, kdf, rng)?;
    record_identity(data_dir, &secret)?;
    Ok((secret, source))
}

/// Fails when `data_dir` once held an identity ([`IDENTITY_MARKER_FILE`]) that is gone: call
/// it before drawing a new key, unless the user asked to replace the identity.
pub fn refuse_lost_identity(data_dir: &Path) -> anyhow::Result<()> {
    let marker = data_dir.join(IDENTITY_MARKER_FILE);
    let address = match std::fs::read_to_string(&marker) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", marker.display())),
    };
    bail!(
        "{dir} held the identity {address} ({marker_name}) but neither {store} nor {nodekey}          holds it now (a damaged or replaced store?); refusing to create a new identity. Restore          {store} from a backup or run `hush key import --data-dir {dir} FILE` with an exported          keystore; to start over with a NEW identity run `hush key new --data-dir {dir}          --replace-identity`",
        dir = data_dir.display(),
        marker_name = IDENTITY_MARKER_FILE,
        store = crate::store::STORE_FILE,
        nodekey = NODEKEY_FILE,
    )
}

/// Writes [`IDENTITY_MARKER_FILE`] for `secret` unless it already says so (temporary file, then
/// rename: a crash leaves the old marker or the new one).
pub fn record_identity(data_dir: &Path, secret: &[u8; 32]) -> anyhow::Result<()> {
    let text = format!(
        "0x{}\n",
        hex::encode(crate::keystore::address_of_secret(secret)?)
    );
    let marker = data_dir.join(IDENTITY_MARKER_FILE);
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = data_dir.join(format!("{IDENTITY_MARKER_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &marker)
    };
    write().with_context(|| format!("writing {}", marker.display()))
}

fn load_identity_unchecked(
    data_dir: &Path,
    store: &NodeStore,
    sealed: Option<String>,
    passphrase: Option<&str>,
    kdf: ScryptParams,
    rng: &mut (impl RngCore + CryptoRng),
) -> anyhow::Result<([u8; 32], IdentitySource)> {
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
