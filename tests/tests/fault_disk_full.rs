//! Collector disk full: the collector's data directory is a small tmpfs mounted by the test
//! (root only; skipped loudly otherwise). A filler file takes the remaining space; the
//! collector must answer 503 with Retry-After (never an ack without a commit), the real
//! agent keeps spooling, and once the filler is deleted everything produced — by a wire
//! agent and by the real agent — is stored exactly once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use attest_tests::fixtures::{
    AgentCred, AgentSetup, Collector, ServiceDef, assert_rollups_match_raw, loopback_check_ids,
    loopback_checks, metrics, ok_target, spooled_keys, stored_keys, wait_progress,
};
use attest_tests::load::{DeliveryStats, Produced, Reply, WireAgent, measurements, tally};
use attest_tests::spool_oracle::SegmentKeeper;
use attest_tests::{free_port, get, sample, wait_for};
use jiff::SignedDuration;

/// A tmpfs mounted for the life of the value; unmounted (lazily) on drop.
struct TmpfsMount {
    dir: PathBuf,
}

impl TmpfsMount {
    /// `None` when mounting is not permitted here (not root, or no CAP_SYS_ADMIN).
    fn mount(dir: &Path, size: &str) -> Option<TmpfsMount> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        out.status.success().then(|| TmpfsMount {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes zeros to `path` until the file system refuses (ENOSPC); returns bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 16 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_answers_503_and_loses_nothing_once_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("small-fs");
    let Some(mount) = TmpfsMount::mount(&mnt, "8m") else {
        eprintln!(
            "!!!!! SKIPPED full_disk_answers_503_and_loses_nothing_once_space_returns: cannot \
             mount a tmpfs at {} (run the tests as root to include this fault) !!!!!",
            mnt.display()
        );
        return;
    };
    let data = mnt.join("data");
    let target = ok_target().await;
    let (wire_cred, real) = (AgentCred::new("wire-df"), AgentCred::new("real-df"));
    let real_checks = loopback_check_ids("df", 1);
    let mut checks = real_checks.clone();
    checks.push("wire-df-check".into());
    let svc = ServiceDef {
        name: "disk".into(),
        checks: checks.clone(),
    };
    let mut collector = Collector::new(
        dir.path(),
        Some(&data),
        &[wire_cred.clone(), real.clone()],
        &[svc],
    );
    collector.start().await;
    let setup = AgentSetup {
        cred: real.clone(),
        collector_port: collector.port,
        listen_port: free_port(),
        spool_dir: dir.path().join("spool"),
        max_bytes: "4MiB".into(),
        checks_toml: loopback_checks("df", target, 1, "200ms"),
    };
    let keeper = SegmentKeeper::start(&setup.spool_dir, &dir.path().join("kept"));
    let mut agent = setup.spawn(dir.path());
    wait_progress(&collector.data_dir, 0, 10, Duration::from_secs(60)).await;

    let filler = mnt.join("filler");
    let filled = fill(&filler);
    let wire = WireAgent::new(&collector.url(), &wire_cred.id, &wire_cred.token);
    let produced = Produced::default();
    let base = attest_tests::wall_now()
        .checked_sub(SignedDuration::from_mins(10))
        .expect("ts");
    // Send fresh batches until one is refused for lack of space (pages SQLite had already
    // allocated may take a few first).
    let mut refused = None;
    for seq in 1..=200u64 {
        let start = base
            .checked_add(SignedDuration::from_millis(seq as i64 * 100))
            .expect("ts");
        let ms = measurements("wire-df-check", start, 50, 1000);
        produced.add(&wire.id, &ms);
        let batch = wire.batch(seq, ms, Vec::new());
        match wire.post(&batch).await {
            Reply::Acked(_) => continue,
            Reply::Refused {
                status: 503,
                retry_after,
                error,
            } => {
                refused = Some((batch, retry_after, error));
                break;
            }
            other => panic!(
                "seq {seq}: expected an ack or 503 on a full disk, got {other:?}\n{}",
                collector.log_text()
            ),
        }
    }
    let (pending, retry_after, error) =
        refused.expect("200 batches of 50 measurements were acked on a full disk");
    assert!(retry_after.is_some(), "503 without Retry-After");
    eprintln!("full disk ({filled} filler bytes): 503 {error:?}, Retry-After {retry_after:?}");
    // Readiness reports a store that refuses writes (reads still work on a full disk), and
    // the refusal is logged with the agent and the reason.
    let ready = get(&format!("{}/-/ready", collector.url())).await;
    assert!(
        ready
            .as_ref()
            .is_some_and(|(s, b)| *s == 503 && b.contains("refuses writes")),
        "ready on a full disk: {ready:?}"
    );
    let log = collector.log_text();
    assert!(
        log.lines().any(|l| l.contains("request refused")
            && l.contains("503")
            && l.contains(&wire_cred.id)),
        "no refusal logged for the 503:\n{log}"
    );

    // The agent keeps probing into its spool while the collector cannot commit.
    let port = setup.listen_port;
    let depth_full = wait_for(
        "the agent to spool 30 measurements while the disk is full",
        Duration::from_secs(60),
        || async move {
            let m = metrics(port).await?;
            let d = sample(&m, "attest_agent_spool_depth_measurements", &[])?;
            (d >= 30.0).then_some(d)
        },
    )
    .await;
    let healthy = get(&format!("{}/-/healthy", collector.url())).await;
    assert_eq!(
        healthy.map(|(s, _)| s),
        Some(200),
        "the collector died on a full disk:\n{}",
        collector.log_text()
    );

    std::fs::remove_file(&filler).expect("delete filler");
    let mut stats = DeliveryStats::default();
    let ack = wire
        .deliver(&pending, Duration::from_secs(30), &mut stats)
        .await
        .unwrap_or_else(|e| panic!("after freeing space: {e}\n{}", collector.log_text()));
    let ready = get(&format!("{}/-/ready", collector.url())).await;
    assert_eq!(
        ready.map(|(s, _)| s),
        Some(200),
        "ready again after a commit"
    );
    // The agent honours Retry-After (30 s for a full store) before it tries again.
    wait_for(
        "the agent's spool to drain after space returned",
        Duration::from_secs(120),
        || async move {
            let m = metrics(port).await?;
            let d = sample(&m, "attest_agent_spool_depth_measurements", &[])?;
            (d < 10.0).then_some(())
        },
    )
    .await;
    setup
        .drain(&mut agent, dir.path(), Duration::from_secs(60))
        .await;

    let spooled = keeper.spooled().expect("spool oracle");
    let mut all = produced.keys();
    all.extend(spooled_keys(&real.id, &spooled));
    let store = collector.store();
    let stored = stored_keys(&store, &checks);
    let t = tally(&all, &stored);
    eprintln!(
        "after space returned: refused batch acked {ack:?}; agent depth while full {depth_full}; {t}"
    );
    assert!(t.exact(), "{t}");
    assert_rollups_match_raw(&store, &checks, &stored);
    drop(collector);
    drop(mount);
}
