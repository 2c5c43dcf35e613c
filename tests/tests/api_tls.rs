//! TLS end to end with real processes: a collector serving HTTPS with mutual TLS
//! (`[server] tls_cert/tls_key/client_ca`) and agents configured with `[transport] ca_file`
//! (and `client_cert`/`client_key`). Certificates are generated here with rcgen.
//!
//! Asserts: an agent with a client certificate delivers (its check shows up in the collector's
//! `/metrics`); a client without a certificate is refused; an agent without a certificate
//! delivers nothing and counts send errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use attest_tests::{Proc, free_port, sample, wait_for};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

const BOUND: Duration = Duration::from_secs(30);

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
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let client = CertificateParams::new(vec!["tls-agent".into()])
        .expect("params")
        .signed_by(&client_key, &ca)
        .expect("client cert");
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).expect("write pem");
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
    }
}

fn write_collector(dir: &Path, port: u16, pki: &Pki) -> String {
    let cfg = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
tls_cert = {cert:?}
tls_key = {key:?}
client_ca = {ca:?}

[storage]
data_dir = "data"

[[agent]]
id = "tls-agent"
token = "tls-agent-token"

[[agent]]
id = "certless"
token = "certless-token"

[[service]]
name = "collector-port"
checks = ["port"]
target = "99%"
"#,
        cert = pki.server_cert.display().to_string(),
        key = pki.server_key.display().to_string(),
        ca = pki.ca.display().to_string(),
    );
    let p = dir.join("collector.toml");
    std::fs::write(&p, cfg).expect("write collector config");
    p.display().to_string()
}

/// An agent probing the collector's port over TCP and delivering over HTTPS.
fn write_agent(
    dir: &Path,
    id: &str,
    port: u16,
    pki: &Pki,
    client_cert: bool,
    listen: u16,
) -> String {
    let identity = if client_cert {
        format!(
            "client_cert = {:?}\nclient_key = {:?}\n",
            pki.client_cert.display().to_string(),
            pki.client_key.display().to_string()
        )
    } else {
        String::new()
    };
    let cfg = format!(
        r#"
[agent]
id = "{id}"
collector_url = "https://127.0.0.1:{port}"
token = "{id}-token"
listen = "127.0.0.1:{listen}"

[spool]
dir = "spool-{id}"

[transport]
batch_max_age = "200ms"
backoff_initial = "100ms"
backoff_max = "500ms"
ca_file = {ca:?}
{identity}
[[check]]
id = "port"
kind = "tcp"
address = "127.0.0.1:{port}"
interval = "1s"
timeout = "800ms"
"#,
        ca = pki.ca.display().to_string(),
    );
    let p = dir.join(format!("agent-{id}.toml"));
    std::fs::write(&p, cfg).expect("write agent config");
    p.display().to_string()
}

fn https_client(pki: &Pki, with_cert: bool) -> reqwest::Client {
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

async fn fetch(client: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let r = client.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_delivers_over_mutual_tls_and_certless_clients_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let port = free_port();
    let collector_cfg = write_collector(dir.path(), port, &pki);
    let collector = Proc::spawn(
        "collector",
        "attest-collector",
        &["run", "--config", &collector_cfg],
        dir.path(),
    );
    let base = format!("https://127.0.0.1:{port}");
    let with_cert = https_client(&pki, true);
    wait_for("collector ready over mTLS", BOUND, || async {
        fetch(&with_cert, &format!("{base}/-/ready"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;

    // A client without a certificate never gets an HTTP answer.
    let refused = https_client(&pki, false)
        .get(format!("{base}/-/ready"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a client without a certificate got {:?}",
        refused.map(|r| r.status())
    );

    let agent_listen = free_port();
    let agent_cfg = write_agent(dir.path(), "tls-agent", port, &pki, true, agent_listen);
    let mut agent = Proc::spawn(
        "agent",
        "attest-agent",
        &["run", "--config", &agent_cfg],
        dir.path(),
    );
    wait_for(
        "the agent's check in the collector's /metrics",
        BOUND,
        || async {
            let (s, m) = fetch(&with_cert, &format!("{base}/metrics")).await?;
            (s == 200
                && sample(
                    &m,
                    "attest_check_success",
                    &[("check", "port"), ("agent", "tls-agent")],
                ) == Some(1.0))
            .then_some(())
        },
    )
    .await;
    let exit = agent.signal_and_wait("TERM", BOUND);
    assert!(
        exit.success(),
        "agent exit {exit:?}; log:\n{}",
        agent.log_text()
    );

    // An agent without a client certificate is refused at the handshake: it counts send
    // errors and the collector never hears of it.
    let certless_listen = free_port();
    let certless_cfg = write_agent(dir.path(), "certless", port, &pki, false, certless_listen);
    let certless = Proc::spawn(
        "certless",
        "attest-agent",
        &["run", "--config", &certless_cfg],
        dir.path(),
    );
    let plain = attest_tests::client();
    wait_for(
        "send errors of the agent without a certificate",
        BOUND,
        || async {
            let (s, m) = fetch(
                &plain,
                &format!("http://127.0.0.1:{certless_listen}/metrics"),
            )
            .await?;
            (s == 200
                && sample(&m, "attest_agent_send_errors_total", &[]).is_some_and(|v| v >= 2.0))
            .then_some(())
        },
    )
    .await;
    let (_, m) = fetch(&with_cert, &format!("{base}/metrics"))
        .await
        .expect("collector metrics");
    assert_eq!(
        sample(&m, "attest_check_success", &[("agent", "certless")]),
        None,
        "a measurement of the certless agent was accepted:\n{m}"
    );
    assert!(
        collector.log_text().contains("TLS handshake refused"),
        "collector log:\n{}",
        collector.log_text()
    );
    drop(certless);
}

#[test]
fn unreadable_tls_file_stops_startup_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki(dir.path());
    let cfg = write_collector(dir.path(), free_port(), &pki);
    std::fs::write(&pki.server_key, "not a key\n").expect("spoil key");
    let out = std::process::Command::new(attest_tests::bin("attest-collector"))
        .args(["run", "--config", &cfg])
        .env("ATTEST_LOG", "warn")
        .output()
        .expect("run collector");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "invalid tls_key file {}",
            pki.server_key.display()
        )) && stderr.contains("no private key"),
        "{stderr}"
    );
}
