//! Memory held by hostile connections, measured on the real collector binary over loopback
//! (a bench, not a timed test: the numbers depend on the machine). Run:
//! `cargo bench -p attest-collector --bench stalled_connections` (release), or with
//! `--profile dev` for a quicker build.
//!
//! Scenario A, stalled wrong-token uploads: 40 connections each send ingest headers with a
//! wrong bearer token and `Content-Length` of `max_body_bytes` (8 MiB), then all but the last
//! byte of the body, and stall. The collector must refuse them on the headers (401) instead
//! of buffering the bodies: RSS should stay within 20 MiB of idle (issue 12's bound).
//!
//! Scenario B, idle connections: 200 connections that never send a request must be closed
//! by `header_read_timeout` (set to 2 s here); the bench counts how many are still open
//! after 4 s.
//!
//! Prints idle RSS, the peak while the 40 connections push and stall, the delta against the
//! 20 MiB bound, and the connections still open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BODY: usize = 8 << 20;
const STALLED: usize = 40;
const IDLE: usize = 200;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"{addr}\"\nheader_read_timeout = \"2s\"\n\n[storage]\ndata_dir = {:?}\n\n\
             [[agent]]\nid = \"a\"\ntoken = \"the-right-token-0123456789\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .expect("config");
    let mut child = start(&cfg, dir.path());
    wait_ready(addr);
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.id();
    let idle = rss_kib(pid);
    println!("idle RSS: {:.1} MiB", mib(idle));

    let (peak, open) = stalled_uploads(addr, pid);
    let delta = mib(peak.saturating_sub(idle));
    println!(
        "{STALLED} stalled wrong-token uploads: peak RSS {:.1} MiB (+{delta:.1} MiB over idle; bound 20 MiB: {}); {open} of {STALLED} connections still open after the push",
        mib(peak),
        if delta <= 20.0 { "within" } else { "EXCEEDED" }
    );

    let still_open = idle_connections(addr);
    println!(
        "{IDLE} idle connections: {still_open} still open 4 s later (header_read_timeout 2 s)"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn start(cfg: &Path, dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("collector.log")).expect("log");
    Command::new(env!("CARGO_BIN_EXE_attest-collector"))
        .args(["run", "--config", &cfg.display().to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the collector")
}

fn wait_ready(addr: SocketAddr) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("collector not ready within 30 s");
}

/// Pushes the 40 uploads from threads, sampling RSS every 50 ms until every writer is done
/// (all bytes but the last written, or refused) and 2 s more have passed. Returns the peak
/// and how many connections the collector still holds open.
fn stalled_uploads(addr: SocketAddr, pid: u32) -> (u64, usize) {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut conns = Vec::new();
    for _ in 0..STALLED {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(30))).ok();
        let head = format!(
            "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token\r\nContent-Type: application/json\r\nContent-Length: {BODY}\r\n\r\n"
        );
        let _ = s.write_all(head.as_bytes());
        let w = s.try_clone().expect("clone");
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut w = w;
            let chunk = vec![b' '; 64 << 10];
            let mut sent = 0;
            while sent < BODY - 1 {
                let n = chunk.len().min(BODY - 1 - sent);
                if w.write_all(&chunk[..n]).is_err() {
                    break;
                }
                sent += n;
            }
            let _ = tx.send(sent);
        });
        conns.push(s);
    }
    drop(tx);
    let mut peak = 0;
    let mut done = 0;
    let start = Instant::now();
    let mut finished_at = None;
    loop {
        peak = peak.max(rss_kib(pid));
        while rx.try_recv().is_ok() {
            done += 1;
        }
        if done == STALLED && finished_at.is_none() {
            finished_at = Some(Instant::now());
        }
        if finished_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2))
            || start.elapsed() > Duration::from_secs(90)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let open = conns.iter().filter(|s| still_open(s)).count();
    (peak, open)
}

/// Opens 200 connections that send nothing and counts those still open after 4 s.
fn idle_connections(addr: SocketAddr) -> usize {
    let conns: Vec<TcpStream> = (0..IDLE)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    conns.iter().filter(|s| still_open(s)).count()
}

/// A peer that closed shows EOF (or an error) on a non-blocking read; an open one would block.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).ok();
    let mut buf = [0u8; 1024];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue, // an answer (e.g. 401) may precede the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
