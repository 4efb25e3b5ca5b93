use std::fs;
use std::path::{Path, PathBuf};

use super::cli::{execute, KeyCommand};
use super::*;
use crate::nodekey::NODEKEY_FILE;
use crate::test_util::temp_dir;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const VECTORS: &str = include_str!("v3_test_vectors.json");

fn vector(name: &str) -> (String, String, String) {
    let v: Value = serde_json::from_str(VECTORS).unwrap();
    let c = &v[name];
    (
        c["json"].to_string(),
        c["password"].as_str().unwrap().to_string(),
        c["priv"].as_str().unwrap().to_string(),
    )
}

fn check_vector(name: &str) {
    let (json, pass, priv_hex) = vector(name);
    let k = decrypt_key(json.as_bytes(), pass.as_bytes()).unwrap();
    // Short keys are left-padded to 32 bytes.
    assert_eq!(hex::encode(k.secret), format!("{priv_hex:0>64}"), "{name}");
    assert_eq!(
        k.id.as_deref(),
        serde_json::from_str::<Value>(&json).unwrap()["id"].as_str()
    );
    assert_eq!(
        decrypt_key(json.as_bytes(), b"wrong").unwrap_err(),
        KeystoreError::MacMismatch,
        "{name}"
    );
}

#[test]
fn wiki_pbkdf2_vector() {
    check_vector("wikipage_test_vector_pbkdf2");
    // The wiki key's well-known address.
    let (json, pass, _) = vector("wikipage_test_vector_pbkdf2");
    let k = decrypt_key(json.as_bytes(), pass.as_bytes()).unwrap();
    assert_eq!(
        hex::encode(k.address),
        "008aeeda4d805471df9b2a5b0f38a0c3bcba786b"
    );
}

#[test]
fn wiki_scrypt_vector() {
    check_vector("wikipage_test_vector_scrypt");
}

#[test]
fn geth_short_key_vectors() {
    check_vector("31_byte_key");
    check_vector("30_byte_key");
}

fn rng(n: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(n)
}

#[test]
fn encrypt_decrypt_roundtrip_geth_layout() {
    let secret = [7u8; 32];
    let json = encrypt_key(&secret, b"pw", LIGHT_SCRYPT, &mut rng(1)).unwrap();
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], 3);
    assert_eq!(v["crypto"]["cipher"], "aes-128-ctr");
    assert_eq!(v["crypto"]["kdf"], "scrypt");
    assert_eq!(v["crypto"]["kdfparams"]["n"], 4096);
    assert_eq!(v["crypto"]["kdfparams"]["r"], 8);
    assert_eq!(v["crypto"]["kdfparams"]["p"], 6);
    assert_eq!(v["crypto"]["kdfparams"]["dklen"], 32);
    assert_eq!(v["id"].as_str().unwrap().len(), 36);
    assert_eq!(
        v["address"].as_str().unwrap(),
        hex::encode(address_of_secret(&secret).unwrap())
    );
    let k = decrypt_key(json.as_bytes(), b"pw").unwrap();
    assert_eq!(k.secret, secret);
    assert_eq!(
        decrypt_key(json.as_bytes(), b"pW").unwrap_err(),
        KeystoreError::MacMismatch
    );
    // A tampered address is caught.
    let mut t = v.clone();
    t["address"] = Value::String("00".repeat(20));
    assert_eq!(
        decrypt_key(t.to_string().as_bytes(), b"pw").unwrap_err(),
        KeystoreError::AddressMismatch
    );
    // Capitalised "Crypto" (MyEtherWallet) is accepted.
    let mut c = v.as_object().unwrap().clone();
    let crypto = c.remove("crypto").unwrap();
    c.insert("Crypto".into(), crypto);
    assert_eq!(
        decrypt_key(Value::Object(c).to_string().as_bytes(), b"pw")
            .unwrap()
            .secret,
        secret
    );
    // Secrets are not printed by Debug.
    assert!(!format!("{k:?}").contains(&hex::encode(secret)));
}

#[test]
fn hostile_and_malformed_files_are_typed_errors() {
    let secret = [9u8; 32];
    let good: Value =
        serde_json::from_str(&encrypt_key(&secret, b"pw", LIGHT_SCRYPT, &mut rng(2)).unwrap())
            .unwrap();
    let with = |path: &[&str], val: Value| {
        let mut v = good.clone();
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = val;
        decrypt_key(v.to_string().as_bytes(), b"pw").unwrap_err()
    };
    use serde_json::json;
    assert_eq!(
        with(&["version"], json!(2)),
        KeystoreError::UnsupportedVersion(2)
    );
    assert_eq!(
        with(&["crypto", "cipher"], json!("aes-128-cbc")),
        KeystoreError::UnsupportedCipher("aes-128-cbc".into())
    );
    assert_eq!(
        with(&["crypto", "kdf"], json!("argon2")),
        KeystoreError::UnsupportedKdf("argon2".into())
    );
    assert_eq!(
        with(&["crypto", "kdfparams", "n"], json!(1u64 << 30)),
        KeystoreError::KdfParams("n")
    );
    assert_eq!(
        with(&["crypto", "kdfparams", "n"], json!(1000)),
        KeystoreError::KdfParams("n")
    );
    assert_eq!(
        with(&["crypto", "kdfparams", "p"], json!(1000)),
        KeystoreError::KdfParams("p")
    );
    assert_eq!(
        with(&["crypto", "kdfparams", "dklen"], json!(16)),
        KeystoreError::KdfParams("dklen")
    );
    assert_eq!(
        with(&["crypto", "cipherparams", "iv"], json!("00")),
        KeystoreError::BadField("iv")
    );
    assert_eq!(
        with(&["crypto", "ciphertext"], json!("zz")),
        KeystoreError::BadField("ciphertext")
    );
    assert_eq!(
        with(&["crypto", "mac"], json!(5)),
        KeystoreError::BadField("mac")
    );
    assert!(matches!(
        decrypt_key(b"not json", b""),
        Err(KeystoreError::Json(_))
    ));
    assert_eq!(
        decrypt_key(b"[]", b"").unwrap_err(),
        KeystoreError::BadField("top level")
    );
    assert_eq!(
        decrypt_key(b"{}", b"").unwrap_err(),
        KeystoreError::Missing("version")
    );
    assert_eq!(
        decrypt_key(br#"{"version":3}"#, b"").unwrap_err(),
        KeystoreError::Missing("crypto")
    );
    // PBKDF2: bad prf and absurd round counts are refused before any work.
    let (json, _, _) = vector("wikipage_test_vector_pbkdf2");
    let mut v: Value = serde_json::from_str(&json).unwrap();
    v["crypto"]["kdfparams"]["prf"] = json!("hmac-sha512");
    assert_eq!(
        decrypt_key(v.to_string().as_bytes(), b"testpassword").unwrap_err(),
        KeystoreError::UnsupportedPrf("hmac-sha512".into())
    );
    v["crypto"]["kdfparams"]["prf"] = json!("hmac-sha256");
    v["crypto"]["kdfparams"]["c"] = json!(u64::from(u32::MAX) + 1);
    assert_eq!(
        decrypt_key(v.to_string().as_bytes(), b"testpassword").unwrap_err(),
        KeystoreError::KdfParams("c")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn decrypt_total_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decrypt_key(&bytes, b"pw");
    }

    #[test]
    fn decrypt_total_on_truncations(cut in 0usize..2000) {
        // n = 2 so each attempt is cheap.
        let (json, pass, _) = vector("31_byte_key");
        let b = json.as_bytes();
        let _ = decrypt_key(&b[..cut.min(b.len())], pass.as_bytes());
    }
}

fn run(cmd: KeyCommand, env: Option<&str>) -> anyhow::Result<String> {
    // A fresh seed per call: two `new` in different dirs must give different keys.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut out = Vec::new();
    execute(cmd, env, &mut rng(n), &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} not in {out}"))
}

#[test]
fn cli_new_export_import_roundtrip() {
    let root = temp_dir("keystore-cli");
    let (a, b) = (root.join("a"), root.join("b"));
    let out = run(
        KeyCommand::New {
            data_dir: a.clone(),
            passphrase_file: None,
            light_kdf: false,
            replace_identity: false,
        },
        None,
    )
    .unwrap();
    assert_eq!(line(&out, "created: "), "true");
    let pubkey = line(&out, "public_key: ").to_string();
    assert!(
        pubkey.starts_with("0x04") && pubkey.len() == 132,
        "{pubkey}"
    );
    let out2 = run(
        KeyCommand::New {
            data_dir: a.clone(),
            passphrase_file: None,
            light_kdf: false,
            replace_identity: false,
        },
        None,
    )
    .unwrap();
    assert_eq!(line(&out2, "created: "), "false");
    assert_eq!(line(&out2, "public_key: "), pubkey);

    let file = root.join("key.json");
    let pass_file = root.join("pass.txt");
    fs::write(&pass_file, "secret words\r\nignored\n").unwrap();
    let export = |file: &Path, pf: Option<PathBuf>, env: Option<&str>| {
        run(
            KeyCommand::Export {
                data_dir: a.clone(),
                out: file.to_path_buf(),
                passphrase_file: pf,
                light_kdf: true,
            },
            env,
        )
    };
    // No passphrase, empty passphrase, missing identity: refused.
    assert!(export(&file, None, None).is_err());
    assert!(export(&file, None, Some("")).is_err());
    assert!(run(
        KeyCommand::Export {
            data_dir: root.join("none"),
            out: root.join("x.json"),
            passphrase_file: None,
            light_kdf: true
        },
        Some("pw")
    )
    .is_err());
    assert!(!root.join("none").join(NODEKEY_FILE).exists());
    let out = export(&file, Some(pass_file.clone()), None).unwrap();
    assert_eq!(line(&out, "public_key: "), pubkey);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // The file is the first line of the passphrase file; env is the fallback.
    assert!(decrypt_key(&fs::read(&file).unwrap(), b"secret words").is_ok());
    assert!(
        export(&file, Some(pass_file.clone()), None).is_err(),
        "no overwrite"
    );

    let import = |dir: &Path, force: bool, env: Option<&str>| {
        run(
            KeyCommand::Import {
                data_dir: dir.to_path_buf(),
                file: file.clone(),
                passphrase_file: None,
                force,
            },
            env,
        )
    };
    // Wrong passphrase: nothing written.
    let err = import(&b, false, Some("nope")).unwrap_err();
    assert!(format!("{err:#}").contains("MAC mismatch"), "{err:#}");
    assert!(!b.join(NODEKEY_FILE).exists());
    let out = import(&b, false, Some("secret words")).unwrap();
    assert_eq!(line(&out, "public_key: "), pubkey);
    assert_eq!(line(&out, "imported: "), "replaced");
    assert_eq!(
        fs::read_to_string(a.join(NODEKEY_FILE)).unwrap(),
        fs::read_to_string(b.join(NODEKEY_FILE)).unwrap()
    );
    let out = import(&b, false, Some("secret words")).unwrap();
    assert_eq!(line(&out, "imported: "), "unchanged");

    // A different existing identity is kept unless --force, then backed up.
    let c = root.join("c");
    let other = run(
        KeyCommand::New {
            data_dir: c.clone(),
            passphrase_file: None,
            light_kdf: false,
            replace_identity: false,
        },
        None,
    )
    .unwrap();
    let other_key = fs::read_to_string(c.join(NODEKEY_FILE)).unwrap();
    assert!(import(&c, false, Some("secret words")).is_err());
    assert_eq!(fs::read_to_string(c.join(NODEKEY_FILE)).unwrap(), other_key);
    import(&c, true, Some("secret words")).unwrap();
    let backup = c.join(format!(
        "{NODEKEY_FILE}.bak-{}",
        line(&other, "address: 0x")
    ));
    assert_eq!(fs::read_to_string(backup).unwrap(), other_key);
    let again = run(
        KeyCommand::New {
            data_dir: c.clone(),
            passphrase_file: None,
            light_kdf: false,
            replace_identity: false,
        },
        None,
    )
    .unwrap();
    assert_eq!(line(&again, "public_key: "), pubkey);
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn cli_works_on_a_sealed_identity() {
    let root = temp_dir("keystore-cli-sealed");
    let (a, b) = (root.join("a"), root.join("b"));
    let created = run(
        KeyCommand::New {
            data_dir: a.clone(),
            passphrase_file: None,
            light_kdf: true,
            replace_identity: false,
        },
        Some("pw"),
    )
    .unwrap();
    assert_eq!(line(&created, "created: "), "true");
    assert!(!a.join(NODEKEY_FILE).exists(), "sealed, no plaintext");
    let pubkey = line(&created, "public_key: ").to_string();
    // Without the passphrase the sealed identity cannot be used.
    let err = run(
        KeyCommand::New {
            data_dir: a.clone(),
            passphrase_file: None,
            light_kdf: true,
            replace_identity: false,
        },
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("sealed"), "{err}");
    let file = root.join("k.json");
    run(
        KeyCommand::Export {
            data_dir: a.clone(),
            out: file.clone(),
            passphrase_file: None,
            light_kdf: true,
        },
        Some("pw"),
    )
    .unwrap();
    // Import into another sealed store, with --force over a different identity.
    run(
        KeyCommand::New {
            data_dir: b.clone(),
            passphrase_file: None,
            light_kdf: true,
            replace_identity: false,
        },
        Some("pw"),
    )
    .unwrap();
    let import = |force| {
        run(
            KeyCommand::Import {
                data_dir: b.clone(),
                file: file.clone(),
                passphrase_file: None,
                force,
            },
            Some("pw"),
        )
    };
    assert!(import(false)
        .unwrap_err()
        .to_string()
        .contains("different sealed identity"));
    let out = import(true).unwrap();
    assert_eq!(line(&out, "imported: "), "replaced");
    assert_eq!(line(&out, "public_key: "), pubkey);
    assert!(fs::read_dir(&b).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("identity.bak-")));
    let again = run(
        KeyCommand::New {
            data_dir: b.clone(),
            passphrase_file: None,
            light_kdf: true,
            replace_identity: false,
        },
        Some("pw"),
    )
    .unwrap();
    assert_eq!(line(&again, "public_key: "), pubkey);
    assert_eq!(line(&again, "created: "), "false");
}
