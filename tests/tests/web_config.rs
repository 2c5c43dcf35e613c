//! `--web.config.file` end to end, on both listeners, with real processes: the agent's
//! `/metrics` and the collector's routes behind basic auth (bcrypt hashes of cost 4 and 10),
//! TLS with required client certificates, the collector's read-only `[[reader]]` tokens, and
//! bad web configurations refused at start.
//!
//! Asserts: no credentials → 401 with `WWW-Authenticate`, wrong → 401, right → 200 for each
//! hash cost; plain HTTP to a TLS port and a client without a certificate get no answer
//! while the listener keeps serving; a reader token reads SLA figures and metrics but gets
//! 403 on maintenance and ingest; a bad file exits 78 naming the file and what was expected.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use attest_tests::{Proc, free_port, wait_for};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const BOUND: Duration = Duration::from_secs(30);
const READER: &str = "reader-token-0123456789";
const AGENT_TOKEN: &str = "web-agent-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let sign = |names: Vec<String>| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &ca)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    };
    let (server, server_key) = sign(vec!["127.0.0.1".into(), "localhost".into()]);
    let (client, client_key) = sign(vec!["scraper".into()]);
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).expect("write pem");
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server),
        server_key: write("server.key", server_key),
        client_cert: write("client.pem", client),
        client_key: write("client.key", client_key),
    }
}

/// `basic_auth_users` with `fast` (cost 4) and `slow` (cost 10).
fn users() -> String {
    let fast = bcrypt::hash("pw-fast", 4).expect("hash");
    let slow = bcrypt::hash("pw-slow", 10).expect("hash");
    format!("basic_auth_users:\n  fast: {fast}\n  slow: {slow}\n")
}

/// `tls_server_config` requiring a client certificate signed by the test CA.
fn tls_required(pki: &Pki) -> String {
    format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p.display().to_string()
}

fn plain() -> reqwest::Client {
    attest_tests::client()
}

fn https(pki: &Pki, with_cert: bool) -> reqwest::Client {
    let _ = attest_tests::client();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca")).expect("ca pem");
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([ca]);
    if with_cert {
        let mut pem = std::fs::read(&pki.client_cert).expect("cert");
        pem.extend_from_slice(&std::fs::read(&pki.client_key).expect("key"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

/// Status, `WWW-Authenticate` values and body of a request; `Err` when no HTTP answer came.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    cred: Cred<'_>,
) -> Result<(u16, Vec<String>, String), reqwest::Error> {
    let mut req = client.request(method, url).timeout(Duration::from_secs(10));
    req = match cred {
        Cred::None => req,
        Cred::Basic(u, p) => req.basic_auth(u, Some(p)),
        Cred::Bearer(t) => req.bearer_auth(t),
    };
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let challenges = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    Ok((status, challenges, resp.text().await?))
}

async fn get(client: &reqwest::Client, url: &str, cred: Cred<'_>) -> (u16, Vec<String>, String) {
    call(client, reqwest::Method::GET, url, cred)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: no answer: {e}"))
}

/// Waits (bounded) until `url` answers 200 to `cred`.
async fn wait_up(client: &reqwest::Client, url: &str, cred: Cred<'_>) {
    wait_for(&format!("{url} to answer 200"), BOUND, || async {
        call(client, reqwest::Method::GET, url, cred)
            .await
            .ok()
            .filter(|(s, _, _)| *s == 200)
    })
    .await;
}

/// Waits (bounded) for a child that must stop by itself.
fn exit_of(p: &mut Proc) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = p.child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            start.elapsed() < BOUND,
            "{} still runs; log:\n{}",
            p.name,
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An agent with only `[agent]` (its collector never answers: not needed here) and a
/// `/metrics` listener on `listen`.
fn write_agent(dir: &Path, listen: u16) -> String {
    let collector = free_port();
    let text = format!(
        "[agent]\nid = \"web-agent\"\ncollector_url = \"http://127.0.0.1:{collector}\"\ntoken = \"{AGENT_TOKEN}\"\nlisten = \"127.0.0.1:{listen}\"\n\n[spool]\ndir = \"spool\"\n"
    );
    write(dir, "agent.toml", &text)
}

fn spawn_agent(dir: &Path, web: &str, listen: u16) -> Proc {
    let cfg = write_agent(dir, listen);
    Proc::spawn(
        "agent",
        "attest-agent",
        &["run", "--config", &cfg, "--web.config.file", web],
        dir,
    )
}

/// The basic-auth table every listener must pass on `url` (a protected path).
async fn basic_auth_table(client: &reqwest::Client, url: &str) {
    let (status, challenges, _) = get(client, url, Cred::None).await;
    assert_eq!(status, 401, "no credentials");
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic realm=")),
        "a 401 says how to authenticate: {challenges:?}"
    );
    for (user, password) in [("fast", "wrong"), ("slow", "wrong"), ("nobody", "pw-fast")] {
        let (status, _, _) = get(client, url, Cred::Basic(user, password)).await;
        assert_eq!(status, 401, "{user}:{password}");
    }
    for (user, password) in [("fast", "pw-fast"), ("slow", "pw-slow")] {
        // Twice: the second answer comes from the cache of verified credentials.
        for _ in 0..2 {
            let (status, _, body) = get(client, url, Cred::Basic(user, password)).await;
            assert_eq!(status, 200, "{user}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_metrics_need_basic_auth_with_each_hash_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = write(
        dir.path(),
        "web.yml",
        &format!(
            "{}http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
            users()
        ),
    );
    let listen = free_port();
    let _agent = spawn_agent(dir.path(), &web, listen);
    let base = format!("http://127.0.0.1:{listen}");
    wait_up(&plain(), &format!("{base}/-/healthy"), Cred::None).await;
    let url = format!("{base}/metrics");
    basic_auth_table(&plain(), &url).await;
    let resp = plain()
        .get(&url)
        .basic_auth("fast", Some("pw-fast"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(
        resp.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    assert!(resp.text().await.expect("body").contains("attest_agent_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_tls_refuses_plain_http_and_clients_without_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let web = write(
        dir.path(),
        "web.yml",
        &format!("{}{}", tls_required(&pki), users()),
    );
    let listen = free_port();
    let agent = spawn_agent(dir.path(), &web, listen);
    let base = format!("https://127.0.0.1:{listen}");
    let ok = https(&pki, true);
    wait_up(&ok, &format!("{base}/-/healthy"), Cred::None).await;
    let url = format!("{base}/metrics");
    let plain_http = call(
        &plain(),
        reqwest::Method::GET,
        &format!("http://127.0.0.1:{listen}/metrics"),
        Cred::Basic("fast", "pw-fast"),
    )
    .await;
    assert!(
        plain_http.is_err(),
        "plain HTTP to the TLS port got an answer: {plain_http:?}"
    );
    let certless = call(
        &https(&pki, false),
        reqwest::Method::GET,
        &url,
        Cred::Basic("fast", "pw-fast"),
    )
    .await;
    assert!(
        certless.is_err(),
        "a client without a certificate got an answer: {certless:?}"
    );
    // The listener kept serving through both refusals.
    basic_auth_table(&ok, &url).await;
    let log = agent.log_text();
    assert!(
        log.contains("TLS handshake refused") && log.contains("agent metrics"),
        "the agent logs refused handshakes: {log}"
    );
}

/// A self-signed client certificate with `CA:TRUE` (what `openssl req -x509` makes, and what
/// exporter-toolkit's own test client certificate is), written as a PEM certificate and key.
fn self_signed_client(dir: &Path) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(vec!["prometheus".to_string()]).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    let (c, k) = (dir.join("selfsigned.pem"), dir.join("selfsigned.key"));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

/// A client trusting the test CA and presenting `cert`/`key`.
fn https_as(pki: &Pki, cert: &Path, key: &Path) -> reqwest::Client {
    let _ = attest_tests::client();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).expect("ca")).expect("ca pem");
    let mut pem = std::fs::read(cert).expect("cert");
    pem.extend_from_slice(&std::fs::read(key).expect("key"));
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([ca])
        .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_ca_client_certificate_named_in_client_ca_file_works_on_both_listeners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let (cert, key) = self_signed_client(dir.path());
    let web = write(
        dir.path(),
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            cert.display()
        ),
    );
    let check = std::process::Command::new(attest_tests::bin("attest-agent"))
        .args([
            "check-config",
            "--config",
            &write_agent(dir.path(), free_port()),
        ])
        .args(["--web.config.file", &web])
        .output()
        .expect("check-config");
    assert!(check.status.success(), "{check:?}");
    let client = https_as(&pki, &cert, &key);
    // Signed by the CA, but not the certificate the file names: refused.
    let other = https(&pki, true);

    let listen = free_port();
    let agent = spawn_agent(dir.path(), &web, listen);
    let url = format!("https://127.0.0.1:{listen}/metrics");
    wait_up(&client, &url, Cred::None).await;
    let refused = call(&other, reqwest::Method::GET, &url, Cred::None).await;
    assert!(
        refused.is_err(),
        "another certificate got an answer: {refused:?}"
    );
    drop(agent);

    let port = free_port();
    let _collector = spawn_collector(dir.path(), &collector_toml(port, ""), Some(&web));
    let url = format!("https://127.0.0.1:{port}/metrics");
    wait_up(&client, &url, Cred::Bearer(READER)).await;
    let refused = call(&other, reqwest::Method::GET, &url, Cred::Bearer(READER)).await;
    assert!(
        refused.is_err(),
        "another certificate got an answer: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_refuses_a_bad_web_config_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = write(
        dir.path(),
        "web.yml",
        "tls_server_config:\n  cert_file: a.pem\n  key_flie: a.key\n",
    );
    let mut agent = spawn_agent(dir.path(), &web, free_port());
    let status = exit_of(&mut agent);
    assert_eq!(status.code(), Some(78), "log:\n{}", agent.log_text());
    let log = agent.log_text();
    assert!(log.contains(&format!("{web}:3:3: error:")), "{log}");
    assert!(
        log.contains("key_flie") && log.contains("expected one of"),
        "{log}"
    );
}

fn collector_toml(port: u16, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"{ADMIN}\"\n{extra}\n[storage]\ndata_dir = \"data\"\n\n[[agent]]\nid = \"web-agent\"\ntoken = \"{AGENT_TOKEN}\"\n\n[[reader]]\nname = \"grafana\"\ntoken = \"{READER}\"\n\n[[service]]\nname = \"shop\"\nchecks = [\"home\"]\ntarget = \"99%\"\n"
    )
}

fn spawn_collector(dir: &Path, cfg: &str, web: Option<&str>) -> Proc {
    let cfg = write(dir, "collector.toml", cfg);
    let mut args = vec!["run", "--config", &cfg];
    if let Some(web) = web {
        args.extend(["--web.config.file", web]);
    }
    Proc::spawn("collector", "attest-collector", &args, dir)
}

fn month() -> String {
    attest_tests::wall_now().strftime("%Y-%m").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_read_routes_take_readers_users_and_stronger_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = write(dir.path(), "web.yml", &users());
    let port = free_port();
    let _collector = spawn_collector(dir.path(), &collector_toml(port, ""), Some(&web));
    let base = format!("http://127.0.0.1:{port}");
    let c = plain();
    wait_up(&c, &format!("{base}/-/ready"), Cred::None).await;
    let sla = format!("{base}/api/v1/sla?month={}", month());
    basic_auth_table(&c, &format!("{base}/metrics")).await;
    basic_auth_table(&c, &sla).await;

    let (status, challenges, _) = get(&c, &sla, Cred::None).await;
    assert_eq!(status, 401);
    assert!(
        challenges.iter().any(|v| v.starts_with("Bearer")),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|v| v.starts_with("Basic")),
        "{challenges:?}"
    );
    let (status, _, _) = get(&c, &sla, Cred::Bearer("not-a-token")).await;
    assert_eq!(status, 401, "a wrong token");

    for path in [
        sla.as_str(),
        &format!("{base}/metrics"),
        &format!("{base}/api/v1/agents"),
    ] {
        for token in [READER, AGENT_TOKEN, ADMIN] {
            let (status, _, body) = get(&c, path, Cred::Bearer(token)).await;
            assert_eq!(status, 200, "{path} with {token}: {body}");
        }
    }

    let post = |path: &str, token: &'static str, body: &'static str| {
        let req = c
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .body(body);
        async move {
            let r = req.send().await.expect("answer");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let window = r#"{"service":"shop","start":"2030-01-01T00:00:00Z","end":"2030-01-01T01:00:00Z","reason":"test"}"#;
    let (status, body) = post("/api/v1/maintenance", READER, window).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "the refusal says why: {body}");
    let (status, body) = post(attest_config::wire::INGEST_PATH, READER, "{}").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    // The admin token still registers maintenance: only the reader is refused.
    let (status, body) = post("/api/v1/maintenance", ADMIN, window).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_tls_from_the_web_config_requires_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let web = write(
        dir.path(),
        "web.yml",
        &format!("{}{}", tls_required(&pki), users()),
    );
    let port = free_port();
    let _collector = spawn_collector(dir.path(), &collector_toml(port, ""), Some(&web));
    let base = format!("https://127.0.0.1:{port}");
    let ok = https(&pki, true);
    wait_up(&ok, &format!("{base}/-/ready"), Cred::None).await;
    let url = format!("{base}/metrics");
    let plain_http = call(
        &plain(),
        reqwest::Method::GET,
        &format!("http://127.0.0.1:{port}/metrics"),
        Cred::Bearer(READER),
    )
    .await;
    assert!(
        plain_http.is_err(),
        "plain HTTP to the TLS port got an answer: {plain_http:?}"
    );
    let certless = call(
        &https(&pki, false),
        reqwest::Method::GET,
        &url,
        Cred::Bearer(READER),
    )
    .await;
    assert!(
        certless.is_err(),
        "a client without a certificate got an answer: {certless:?}"
    );
    basic_auth_table(&ok, &url).await;
    let (status, _, _) = get(&ok, &url, Cred::Bearer(READER)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_refuses_bad_or_conflicting_web_configs_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let bad = write(
        dir.path(),
        "bad.yml",
        "basic_auth_users:\n  alice: hunter2\n",
    );
    let mut c = spawn_collector(dir.path(), &collector_toml(free_port(), ""), Some(&bad));
    assert_eq!(exit_of(&mut c).code(), Some(78), "log:\n{}", c.log_text());
    let log = c.log_text();
    assert!(
        log.contains(&format!(
            "{bad}:2:10: error: basic_auth_users.alice: expected a bcrypt hash"
        )),
        "{log}"
    );
    assert!(!log.contains("hunter2"), "the secret is not echoed: {log}");
    drop(c);

    let web = write(dir.path(), "web.yml", &tls_required(&pki));
    let server_tls = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        pki.server_cert.display().to_string(),
        pki.server_key.display().to_string()
    );
    let mut c = spawn_collector(
        dir.path(),
        &collector_toml(free_port(), &server_tls),
        Some(&web),
    );
    assert_eq!(exit_of(&mut c).code(), Some(78), "log:\n{}", c.log_text());
    let log = c.log_text();
    assert!(log.contains("TLS is configured twice"), "{log}");
}
