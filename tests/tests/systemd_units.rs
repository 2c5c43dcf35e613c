//! The packaged systemd units and their credentials: both units pass `systemd-analyze verify`
//! without a single complaint (with the built binaries in place of /usr/bin), and a token file
//! under `${CREDENTIALS_DIRECTORY}` — where `LoadCredential=` puts it — is read by both
//! binaries' `check-config`, the packaged configuration files included. Without the variable
//! such a path is refused with a message naming it.
//!
//! `systemd-analyze` is part of systemd (present on Debian); only where it is absent is the
//! verification skipped, with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use attest_tests::bin;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(binary: &str, args: &[&str], credentials: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin(binary));
    cmd.args(args).env_remove("CREDENTIALS_DIRECTORY");
    if let Some(dir) = credentials {
        cmd.env("CREDENTIALS_DIRECTORY", dir);
    }
    cmd.output().expect("run")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn both_units_pass_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed (it comes with systemd)");
        return;
    };
    assert!(probe.status.success(), "systemd-analyze --version failed");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for name in ["attest-agent", "attest-collector"] {
        let unit = std::fs::read_to_string(root().join(format!("dist/systemd/{name}.service")))
            .expect("read unit");
        // verify insists that ExecStart= binaries exist: the ones just built stand in.
        let installed = format!("/usr/bin/{name}");
        assert!(unit.contains(&installed), "{name}.service runs {installed}");
        let built = bin(name).display().to_string();
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, unit.replace(&installed, &built)).expect("write unit");
        units.push(path.display().to_string());
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only complaints about our units count (a container may add noise about its own).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("attest-agent") || l.contains("attest-collector"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{}", text(&out));
    for (name, credential) in [
        (
            "attest-agent",
            "LoadCredential=agent.token:/etc/attest/agent.token",
        ),
        (
            "attest-collector",
            "LoadCredential=tokens:/etc/attest/tokens",
        ),
    ] {
        let unit = std::fs::read_to_string(root().join(format!("dist/systemd/{name}.service")))
            .expect("read unit");
        assert!(
            unit.lines().any(|l| l == credential),
            "{name}: {credential}"
        );
    }
}

#[test]
fn a_token_file_in_the_credentials_directory_is_read_by_both_binaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).expect("mkdir");
    std::fs::write(creds.join("agent.token"), "token-of-web-01-0123456789\n").expect("write");
    std::fs::write(creds.join("tokens_web-01"), "token-of-web-01-0123456789\n").expect("write");
    std::fs::write(creds.join("tokens_admin"), "admin-0123456789\n").expect("write");

    // The packaged agent.toml reads its token from there.
    let packaged = root().join("dist/deb/agent.toml");
    let packaged = packaged.display().to_string();
    let ok = run(
        "attest-agent",
        &["check-config", "-c", &packaged],
        Some(&creds),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let refused = run("attest-agent", &["check-config", "-c", &packaged], None);
    assert_eq!(refused.status.code(), Some(78), "{}", text(&refused));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("agent.token_file")
            && why.contains("$CREDENTIALS_DIRECTORY, which is not set"),
        "{why}"
    );

    let collector = dir.path().join("collector.toml");
    std::fs::write(
        &collector,
        "[server]\nadmin_token_file = \"$CREDENTIALS_DIRECTORY/tokens_admin\"\n\n\
         [[agent]]\nid = \"web-01\"\ntoken_file = \"${CREDENTIALS_DIRECTORY}/tokens_web-01\"\n",
    )
    .expect("write");
    let collector = collector.display().to_string();
    let ok = run(
        "attest-collector",
        &["check-config", "-c", &collector],
        Some(&creds),
    );
    assert!(ok.status.success(), "{}", text(&ok));
    // A credential that systemd filled with its fallback (the source file was missing).
    std::fs::write(creds.join("tokens_web-01"), "\n").expect("write");
    let empty = run(
        "attest-collector",
        &["check-config", "-c", &collector],
        Some(&creds),
    );
    assert_eq!(empty.status.code(), Some(78), "{}", text(&empty));
    let why = String::from_utf8_lossy(&empty.stderr);
    assert!(
        why.contains("agent[0].token_file") && why.contains("LoadCredential="),
        "{why}"
    );
    // The packaged collector.toml stays valid (its agents are commented out).
    let packaged = root().join("dist/deb/collector.toml");
    let ok = run(
        "attest-collector",
        &["check-config", "-c", &packaged.display().to_string()],
        None,
    );
    assert!(ok.status.success(), "{}", text(&ok));
}
