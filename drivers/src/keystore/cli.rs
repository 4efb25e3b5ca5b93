//! `hush key new | export | import`: the node identity (`DATA_DIR/nodekey`, see
//! [`crate::nodekey`]) to and from Ethereum keystore v3 JSON.
//!
//! Contract:
//! - Where the identity lives: sealed in `DATA_DIR/node.sqlite` when the node store holds one
//!   (see [`crate::identity`]), else the plaintext `nodekey`. Every command works on either.
//!   An encrypted store (`crate::sqlcipher`) opens with the command's passphrase; only `new`
//!   with a passphrase creates the store (encrypted) or encrypts a plaintext one, as
//!   `hush node` would.
//! - `new` creates the identity if absent (never replaces one; a data directory whose identity
//!   is lost — [`crate::identity::IDENTITY_MARKER_FILE`] names one that neither the store nor
//!   `nodekey` holds — is refused unless `--replace-identity`) and prints `public_key: 0x04…`,
//!   `address: 0x…` and `created: true|false` on stdout. With a passphrase (file or
//!   environment) the identity is created sealed (a plaintext `nodekey` is sealed and removed).
//! - `import` into a sealed store keeps the imported keystore document itself as the sealed
//!   copy (it opens with the same passphrase); `--force` keeps the old sealed document as
//!   `identity.bak-<old address>.json`.
//! - `export` never creates an identity: no `nodekey` is an error. It refuses to overwrite an
//!   existing `--out` file and writes it with mode 0600 (temporary file, then rename).
//! - `import` decrypts first (a wrong passphrase changes nothing), is a no-op when the same
//!   key is already there, and refuses a different existing key unless `--force`; with
//!   `--force` the old key is kept as `nodekey.bak-<old address>` before the new one is
//!   renamed into place, so an identity is never silently lost.
//! - The passphrase comes from `--passphrase-file` (first line, trailing `\r\n`/`\n`
//!   stripped, as geth's `--password`), else from the environment variable
//!   [`PASSPHRASE_ENV`]. `export` refuses an empty passphrase; `import` accepts one (geth
//!   writes such files).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use rand_core::{CryptoRng, RngCore};

use super::{address_of_secret, decrypt_key, encrypt_key, LIGHT_SCRYPT, STANDARD_SCRYPT};
use crate::identity::{load_identity, record_identity, refuse_lost_identity};
use crate::nodekey::{load_or_create, parse_nodekey, NODEKEY_FILE};
use crate::sqlcipher::{file_state, FileState, StorePassphrase};
use crate::store::{NodeStore, STORE_FILE};

/// Environment variable holding the passphrase when `--passphrase-file` is not given.
pub const PASSPHRASE_ENV: &str = "HUSH_PASSPHRASE";

/// Arguments of `hush key`.
#[derive(clap::Args, Debug, Clone)]
pub struct KeyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// `hush key` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum KeyCommand {
    /// Create the node identity if absent; print its public key and address.
    New {
        /// Data directory (created if absent).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// File whose first line is the passphrase sealing the identity (else
        /// $HUSH_PASSPHRASE; with neither, the identity is the plaintext `nodekey`).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// geth's --lightkdf scrypt parameters for the sealed identity.
        #[arg(long)]
        light_kdf: bool,
        /// Create a new identity even though this data directory held one that is now gone
        /// (its `identity-address` file names it): the old identity is NOT recovered.
        #[arg(long)]
        replace_identity: bool,
    },
    /// Write the node identity as an Ethereum keystore v3 JSON file (scrypt).
    Export {
        /// Data directory holding `nodekey`.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Keystore file to write (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// File whose first line is the passphrase (else $HUSH_PASSPHRASE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// geth's --lightkdf scrypt parameters (N=2^12, p=6) instead of the standard ones
        /// (N=2^18, p=1): much faster, much weaker against guessing.
        #[arg(long)]
        light_kdf: bool,
    },
    /// Replace the node identity with the key in an Ethereum keystore v3 JSON file.
    Import {
        /// Data directory (created if absent).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Keystore file to read.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// File whose first line is the passphrase (else $HUSH_PASSPHRASE).
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Replace an existing, different identity (the old one is kept as a backup file).
        #[arg(long)]
        force: bool,
    },
}

/// Runs `hush key` with the real environment, OS randomness and stdout.
pub fn run_key(args: KeyArgs) -> anyhow::Result<()> {
    let env = std::env::var(PASSPHRASE_ENV).ok();
    execute(
        args.command,
        env.as_deref(),
        &mut rand_core::OsRng,
        &mut std::io::stdout(),
    )
}

/// Runs one `hush key` command; `env_passphrase` is the value of [`PASSPHRASE_ENV`].
pub fn execute(
    cmd: KeyCommand,
    env_passphrase: Option<&str>,
    rng: &mut (impl RngCore + CryptoRng),
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::New {
            data_dir,
            passphrase_file,
            light_kdf,
            replace_identity,
        } => {
            let pass = match (passphrase_file.as_deref(), env_passphrase) {
                (None, None) => None,
                (f, e) => Some(passphrase(f, e)?),
            };
            let existed = data_dir.join(NODEKEY_FILE).exists()
                || sealed_store(&data_dir, pass.as_deref())?.is_some();
            let secret = match pass {
                None if sealed_store(&data_dir, None)?.is_some() => bail!(
                    "the identity in {} is sealed: give --passphrase-file or set {PASSPHRASE_ENV}",
                    data_dir.display()
                ),
                None => {
                    if !existed && !replace_identity {
                        refuse_lost_identity(&data_dir)?;
                    }
                    let secret = load_or_create(&data_dir, rng)?;
                    record_identity(&data_dir, &secret)?;
                    secret
                }
                Some(pass) => {
                    fs::create_dir_all(&data_dir)
                        .with_context(|| format!("creating {}", data_dir.display()))?;
                    let store = NodeStore::open_keyed(
                        &data_dir.join(STORE_FILE),
                        Some(&StorePassphrase::new(&pass)?),
                    )?;
                    let params = if light_kdf {
                        LIGHT_SCRYPT
                    } else {
                        STANDARD_SCRYPT
                    };
                    load_identity(
                        &data_dir,
                        &store,
                        Some(&pass),
                        params,
                        replace_identity,
                        rng,
                    )?
                    .0
                }
            };
            print_identity(out, &secret)?;
            writeln!(out, "created: {}", !existed)?;
        }
        KeyCommand::Export {
            data_dir,
            out: file,
            passphrase_file,
            light_kdf,
        } => {
            let pass = passphrase(passphrase_file.as_deref(), env_passphrase)?;
            if pass.is_empty() {
                bail!("refusing to export with an empty passphrase");
            }
            let secret = match sealed_store(&data_dir, Some(&pass))? {
                Some((_, json)) => {
                    decrypt_key(json.as_bytes(), pass.as_bytes())
                        .context("opening the sealed identity (wrong passphrase?)")?
                        .secret
                }
                None => read_nodekey(&data_dir)?
                    .with_context(|| format!("no identity in {}", data_dir.display()))?,
            };
            if file.exists() {
                bail!("{} exists; refusing to overwrite it", file.display());
            }
            let params = if light_kdf {
                LIGHT_SCRYPT
            } else {
                STANDARD_SCRYPT
            };
            let json = encrypt_key(&secret, pass.as_bytes(), params, rng)?;
            write_secret_file(&file, json.as_bytes())?;
            print_identity(out, &secret)?;
            writeln!(out, "exported: {}", file.display())?;
        }
        KeyCommand::Import {
            data_dir,
            file,
            passphrase_file,
            force,
        } => {
            let pass = passphrase(passphrase_file.as_deref(), env_passphrase)?;
            let json = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let key = decrypt_key(&json, pass.as_bytes())
                .with_context(|| format!("decrypting {}", file.display()))?;
            fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            if let Some((store, old_json)) = sealed_store(&data_dir, Some(&pass))? {
                let old = decrypt_key(old_json.as_bytes(), pass.as_bytes())
                    .context("opening the sealed identity (wrong passphrase?)")?;
                if old.secret == key.secret {
                    print_identity(out, &key.secret)?;
                    writeln!(out, "imported: unchanged")?;
                    return Ok(());
                }
                if !force {
                    bail!(
                        "{} holds a different sealed identity (address 0x{}); use --force to replace it",
                        data_dir.display(),
                        hex::encode(old.address)
                    );
                }
                let backup =
                    data_dir.join(format!("identity.bak-{}.json", hex::encode(old.address)));
                write_secret_file_replacing(&backup, old_json.as_bytes())?;
                let json = String::from_utf8(json).context("keystore is not UTF-8")?;
                store.set_sealed_identity(&json)?;
                record_identity(&data_dir, &key.secret)?;
                print_identity(out, &key.secret)?;
                writeln!(out, "imported: replaced")?;
                return Ok(());
            }
            let path = data_dir.join(NODEKEY_FILE);
            match read_nodekey(&data_dir) {
                Ok(Some(old)) if old == key.secret => {
                    print_identity(out, &key.secret)?;
                    writeln!(out, "imported: unchanged")?;
                    return Ok(());
                }
                Ok(Some(old)) if !force => bail!(
                    "{} holds a different identity (address 0x{}); use --force to replace it",
                    path.display(),
                    hex::encode(address_of_secret(&old)?)
                ),
                Ok(Some(old)) => {
                    let backup = data_dir.join(format!(
                        "{NODEKEY_FILE}.bak-{}",
                        hex::encode(address_of_secret(&old)?)
                    ));
                    fs::copy(&path, &backup)
                        .with_context(|| format!("backing up to {}", backup.display()))?;
                }
                Ok(None) => {}
                // An unreadable key file is replaced only on request, and kept aside.
                Err(e) if !force => return Err(e.context("use --force to replace it")),
                Err(_) => {
                    let backup = data_dir.join(format!("{NODEKEY_FILE}.bak-invalid"));
                    fs::copy(&path, &backup)
                        .with_context(|| format!("backing up to {}", backup.display()))?;
                }
            }
            write_secret_file_replacing(&path, hex::encode(key.secret).as_bytes())?;
            record_identity(&data_dir, &key.secret)?;
            print_identity(out, &key.secret)?;
            writeln!(out, "imported: replaced")?;
        }
    }
    Ok(())
}

fn print_identity(out: &mut dyn Write, secret: &[u8; 32]) -> anyhow::Result<()> {
    let sk = secp256k1::SecretKey::from_slice(secret).context("invalid node key")?;
    let pk = hush_core::ecies::public_key(&sk);
    writeln!(
        out,
        "public_key: 0x{}",
        hex::encode(pk.serialize_uncompressed())
    )?;
    writeln!(
        out,
        "address: 0x{}",
        hex::encode(address_of_secret(secret)?)
    )?;
    Ok(())
}

/// The node store and its sealed identity, if the store exists and holds one (never creates
/// the store, never encrypts a plaintext one: `pass` keys an encrypted store only, so that an
/// export passphrase does not become the store's).
fn sealed_store(
    data_dir: &Path,
    pass: Option<&str>,
) -> anyhow::Result<Option<(NodeStore, String)>> {
    let path = data_dir.join(STORE_FILE);
    let key = match file_state(&path)? {
        FileState::Absent => return Ok(None),
        FileState::Plaintext => None,
        FileState::Encrypted => pass.map(StorePassphrase::new).transpose()?,
    };
    let store = NodeStore::open_keyed(&path, key.as_ref())?;
    Ok(store.sealed_identity()?.map(|json| (store, json)))
}

/// The node key if the file exists, `None` if it does not.
fn read_nodekey(data_dir: &Path) -> anyhow::Result<Option<[u8; 32]>> {
    let path = data_dir.join(NODEKEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse_nodekey(&text, &path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The passphrase in `file`: its first line, trailing `\r\n`/`\n` stripped (geth's
/// `--password`).
pub fn read_passphrase_file(file: &Path) -> anyhow::Result<String> {
    passphrase(Some(file), None)
}

fn passphrase(file: Option<&Path>, env: Option<&str>) -> anyhow::Result<String> {
    let text = match (file, env) {
        (Some(f), _) => {
            fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, Some(e)) => e.to_string(),
        (None, None) => bail!("no passphrase: give --passphrase-file FILE or set {PASSPHRASE_ENV}"),
    };
    let first = text.split('\n').next().unwrap_or_default();
    Ok(first.strip_suffix('\r').unwrap_or(first).to_string())
}

/// Writes a new secret file (mode 0600) via a temporary file and rename; fails if it exists.
fn write_secret_file(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} exists", path.display());
    }
    write_secret_file_replacing(path, data)
}

fn write_secret_file_replacing(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Secret material: owner read/write only.
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
