//! The collector's SQLite files, its saved figures state and the agent's spool are the owner's only (0600 files, 0700
//! directories) even under a umask of 000: both binaries run as child processes started by
//! `sh -c 'umask 000; exec ...'`, and the test reads the modes of what they created.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use attest_tests::{bin, free_port, get, wait_for};

/// Starts `binary args...` under umask 000; killed on drop.
struct Loose(Child);

impl Loose {
    fn start(binary: &str, args: &[&str], log: &Path) -> Loose {
        let mut cmd = format!("umask 000; exec '{}'", bin(binary).display());
        for a in args {
            cmd.push_str(&format!(" '{a}'"));
        }
        let log = std::fs::File::create(log).expect("log");
        Loose(
            Command::new("sh")
                .args(["-c", &cmd])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start under sh"),
        )
    }
}

impl Drop for Loose {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn collector_database_and_wal_are_0600_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let token = "token-of-a-0123456789";
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = {:?}\n[[agent]]\nid = \"a\"\ntoken = \"{token}\"\n\
             [[service]]\nname = \"s\"\nchecks = [\"c\"]\ntarget = \"99%\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let _c = Loose::start(
        "attest-collector",
        &["run", "--config", &cfg_s],
        &dir.path().join("collector.log"),
    );
    wait_for("collector ready", Duration::from_secs(30), || async move {
        get(&format!("http://127.0.0.1:{port}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    // A commit makes SQLite write its WAL.
    let ts = attest_tests::wall_now().to_string();
    let body = format!(
        r#"{{"version":1,"agent":"a","seq":1,"sent_at":"{ts}","measurements":[{{"check":"c","ts":"{ts}","ok":true}}]}}"#
    );
    let r = attest_tests::client()
        .post(format!("http://127.0.0.1:{port}/api/v1/ingest"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert_eq!(mode(&data), 0o700, "data directory");
    for f in ["attest.db", "attest.db-wal", "attest.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    // The figures' saved state (every service's closed minutes and totals) is written by
    // the refresh after that commit.
    let state = data.join("figures-state.bin");
    wait_for("figures state saved", Duration::from_secs(30), || {
        let state = state.clone();
        async move { state.exists().then_some(()) }
    })
    .await;
    assert_eq!(mode(&state), 0o600, "figures-state.bin");
}

#[tokio::test]
async fn agent_spool_is_0700_with_0600_files_under_umask_000() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let cfg = dir.path().join("agent.toml");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"a\"\ncollector_url = \"http://127.0.0.1:{port}\"\ntoken = \"t\"\n\
             [spool]\ndir = {:?}\n\
             [[check]]\nid = \"c\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            spool.display().to_string()
        ),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let _a = Loose::start(
        "attest-agent",
        &["run", "--config", &cfg_s],
        &dir.path().join("agent.log"),
    );
    let spool2 = spool.clone();
    let files = wait_for("spool files", Duration::from_secs(30), || {
        let spool = spool2.clone();
        async move {
            let names: Vec<_> = std::fs::read_dir(&spool)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .collect();
            names
                .iter()
                .any(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
                })
                .then_some(names)
        }
    })
    .await;
    assert_eq!(mode(&spool), 0o700, "spool directory");
    for f in files.iter().filter(|p| p.is_file()) {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}
