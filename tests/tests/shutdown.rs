//! SIGTERM with clients connected (real collector and agents, loopback): long polls are
//! answered `304` at once and idle connections closed at once, so the collector exits long
//! before any poll's `?wait=` would have ended; a request really in flight holds the exit
//! at most `[server] shutdown_timeout`.
//!
//! Every wait is bounded by a time shorter than what the old behaviour needed (a 60 s agent
//! poll, a 300 s `?wait=`, a 5 min body timeout), so a collector that still waited for them
//! fails here instead of merely being slow.

use std::path::Path;
use std::time::Duration;

use attest_tests::fixtures::{AgentCred, AgentSetup, path_str};
use attest_tests::{Proc, free_port, get, sample, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far below the agents' 60 s long poll and the 300 s raw one: exiting within it proves the
/// polls were ended, not waited for.
const EXIT_BOUND: Duration = Duration::from_secs(30);
const BOUND: Duration = Duration::from_secs(30);

/// Starts a collector accepting `agents`, with `server_extra` added to `[server]`, and waits
/// until it is ready.
async fn collector(dir: &Path, port: u16, agents: &[AgentCred], server_extra: &str) -> Proc {
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{server_extra}\n\n[storage]\ndata_dir = {:?}\n\n",
        path_str(&dir.join("data"))
    );
    for a in agents {
        toml.push_str(&format!(
            "[[agent]]\nid = {:?}\ntoken = {:?}\n\n",
            a.id, a.token
        ));
    }
    let cfg = dir.join("collector.toml");
    std::fs::write(&cfg, toml).expect("write config");
    let proc = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &path_str(&cfg)],
        dir,
    );
    wait_for("collector ready", BOUND, || async move {
        get(&format!("http://127.0.0.1:{port}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    proc
}

/// Waits until the collector holds at least `n` open connections (so the raw clients below
/// were accepted before the signal), then gives their requests a moment to be parsed.
async fn wait_connections(port: u16, n: usize) {
    wait_for(
        &format!("{n} open connections at the collector"),
        BOUND,
        || async move {
            let (_, m) = get(&format!("http://127.0.0.1:{port}/metrics")).await?;
            // The scrape's own connection is counted too.
            (sample(&m, "attest_http_connections", &[])? >= (n + 1) as f64).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Reads what the server sends until it closes the connection (bounded).
async fn read_to_close(mut s: TcpStream) -> String {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(BOUND, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection stayed open after the exit");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_long_polls_and_closes_idle_connections_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let agents = [
        AgentCred::new("a1"),
        AgentCred::new("a2"),
        AgentCred::new("poller"),
    ];
    // A drain bound and connection timeouts far beyond EXIT_BOUND: exiting in time must come
    // from ending the polls and idle connections, not from cutting off or timing out.
    let mut proc = collector(
        dir.path(),
        port,
        &agents,
        "shutdown_timeout = \"5m\"\nheader_read_timeout = \"5m\"\nidle_timeout = \"5m\"",
    )
    .await;

    // Two real agents: after their first fetch they long-poll for 60 s.
    let mut running = Vec::new();
    for cred in &agents[..2] {
        let setup = AgentSetup {
            cred: cred.clone(),
            collector_port: port,
            listen_port: free_port(),
            spool_dir: dir.path().join(format!("spool-{}", cred.id)),
            max_bytes: "1MiB".into(),
            checks_toml: String::new(),
        };
        running.push(setup.spawn(dir.path()));
    }
    for agent in &running {
        wait_for("the agent's first assignment", BOUND, || async {
            agent
                .log_text()
                .contains("new check assignment from the collector")
                .then_some(())
        })
        .await;
    }

    // A raw long poll of 300 s (the most the API allows), with the current revision.
    let poller = &agents[2];
    let url = format!("http://127.0.0.1:{port}/api/v1/agents/poller/checks");
    let first = attest_tests::client()
        .get(&url)
        .bearer_auth(&poller.token)
        .send()
        .await
        .expect("first fetch");
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_string();
    let mut long_poll = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "GET /api/v1/agents/poller/checks?wait=300 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nIf-None-Match: {etag}\r\n\r\n",
        poller.token
    );
    long_poll
        .write_all(request.as_bytes())
        .await
        .expect("send long poll");

    // An idle keep-alive connection after one answered request, one that never sent a byte,
    // and one that stopped halfway through its request headers.
    let mut kept = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    kept.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let mut head = [0u8; 256];
    let n = kept.read(&mut head).await.expect("answer");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);
    let silent = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut halfway = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    halfway
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    // Two agents' polls, the raw poll, the kept, the silent and the halfway connection.
    wait_connections(port, 6).await;

    let exit = proc.signal_and_wait("TERM", EXIT_BOUND);
    assert!(exit.success(), "{exit:?}:\n{}", proc.log_text());

    let answer = read_to_close(long_poll).await;
    assert!(
        answer.starts_with("HTTP/1.1 304"),
        "the long poll was not answered 304 at shutdown: {answer:?}"
    );
    assert!(answer.contains(&format!("etag: {etag}")), "{answer:?}");
    assert_eq!(
        read_to_close(kept).await,
        "",
        "nothing more on the idle connection"
    );
    assert_eq!(read_to_close(silent).await, "");
    assert_eq!(
        read_to_close(halfway).await,
        "",
        "a request never completed, never answered"
    );
    let log = proc.log_text();
    assert!(log.contains("collector stopped"), "{log}");
    assert!(!log.contains("shutdown_timeout reached"), "{log}");
    // The agents saw an ordinary 304 and nothing they log as an error about it.
    for agent in &running {
        let text = agent.log_text();
        assert!(!text.contains("refusing the new assignment"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_holds_the_exit_at_most_shutdown_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let agent = AgentCred::new("a1");
    // The stalled upload below would be answered 408 only after 5 minutes.
    let mut proc = collector(
        dir.path(),
        port,
        std::slice::from_ref(&agent),
        "shutdown_timeout = \"1s\"\nbody_read_timeout = \"5m\"\nidle_timeout = \"5m\"",
    )
    .await;
    let mut upload = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"version\":",
        attest_config::wire::INGEST_PATH,
        agent.token
    );
    upload.write_all(head.as_bytes()).await.expect("send");
    wait_connections(port, 1).await;

    let exit = proc.signal_and_wait("TERM", EXIT_BOUND);
    assert!(exit.success(), "{exit:?}:\n{}", proc.log_text());
    let log = proc.log_text();
    assert!(
        log.contains("shutdown_timeout reached with requests still in flight"),
        "{log}"
    );
    assert!(log.contains("collector stopped"), "{log}");
    let answer = read_to_close(upload).await;
    assert!(
        !answer.starts_with("HTTP/1.1 2"),
        "a cut-off upload must not be acked: {answer:?}"
    );
}
