//! `hush key` through the real binary: new → export → import into another data dir gives the
//! same identity, with the passphrase from the environment on one side and a file on the other.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hush-key-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hush(args: &[&str], passphrase_env: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hush"));
    c.args(args).env_remove("HUSH_PASSPHRASE");
    if let Some(p) = passphrase_env {
        c.env("HUSH_PASSPHRASE", p);
    }
    c.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} missing in {out}"))
        .to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn key_new_export_import_roundtrip() {
    let root = temp_dir("roundtrip");
    let (a, b) = (root.join("a"), root.join("b"));
    let file = root.join("identity.json");
    let pass_file = root.join("pass");
    std::fs::write(&pass_file, "correct horse\n").unwrap();

    let created = ok(hush(&["key", "new", "--data-dir", s(&a)], None));
    let pubkey = field(&created, "public_key: ");
    let address = field(&created, "address: ");
    assert_eq!(field(&created, "created: "), "true");

    // Default (standard scrypt) export, passphrase from the environment.
    ok(hush(
        &["key", "export", "--data-dir", s(&a), "--out", s(&file)],
        Some("correct horse"),
    ));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["crypto"]["kdfparams"]["n"], 262144);
    assert_eq!(format!("0x{}", json["address"].as_str().unwrap()), address);

    // Wrong passphrase: refused, nothing created.
    let bad = hush(
        &["key", "import", "--data-dir", s(&b), s(&file)],
        Some("wrong"),
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("MAC mismatch"));
    assert!(!b.join("nodekey").exists());

    let imported = ok(hush(
        &[
            "key",
            "import",
            "--data-dir",
            s(&b),
            "--passphrase-file",
            s(&pass_file),
            s(&file),
        ],
        None,
    ));
    assert_eq!(field(&imported, "public_key: "), pubkey);
    let again = ok(hush(&["key", "new", "--data-dir", s(&b)], None));
    assert_eq!(field(&again, "public_key: "), pubkey);
    assert_eq!(field(&again, "address: "), address);
    assert_eq!(field(&again, "created: "), "false");
    std::fs::remove_dir_all(root).unwrap();
}

/// Issue 16 item 6 through the binary: seal, truncate `node.sqlite` to 0 bytes, `hush key new`
/// refuses (it used to create a new key silently); `--replace-identity` starts over.
#[test]
fn key_new_refuses_to_replace_a_lost_sealed_identity() {
    let dir = temp_dir("lost-identity");
    let first = ok(hush(
        &["key", "new", "--data-dir", s(&dir), "--light-kdf"],
        Some("pw"),
    ));
    assert_eq!(field(&first, "created: "), "true");
    std::fs::File::create(dir.join("node.sqlite")).unwrap();

    let refused = hush(
        &["key", "new", "--data-dir", s(&dir), "--light-kdf"],
        Some("pw"),
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a new key was created silently");
    assert!(
        err.contains(&field(&first, "address: ")) && err.contains("--replace-identity"),
        "{err}"
    );
    // Without a passphrase it would be a plaintext key: refused too.
    assert!(!hush(&["key", "new", "--data-dir", s(&dir)], None)
        .status
        .success());
    assert!(!dir.join("nodekey").exists());

    let replaced = ok(hush(
        &[
            "key",
            "new",
            "--data-dir",
            s(&dir),
            "--light-kdf",
            "--replace-identity",
        ],
        Some("pw"),
    ));
    assert_eq!(field(&replaced, "created: "), "true");
    assert_ne!(
        field(&replaced, "public_key: "),
        field(&first, "public_key: ")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
