//! TLS to PostgreSQL against a private PostgreSQL 15 that each test starts and stops itself:
//! `initdb` in a temp directory, `ssl = on` with a certificate made here (rcgen), listening on
//! 127.0.0.1 only, and a pg_hba.conf that admits TCP clients only over TLS (`hostssl`).
//! initdb refuses to run as root, so as root the server runs as the `postgres` user
//! (`runuser`) in a temp directory that user owns. The system cluster is never touched; only
//! the server started here is stopped (`pg_ctl -D <temp dir> stop`).
//!
//! Without the PostgreSQL 15 binaries the tests skip loudly; `ATTEST_REQUIRE_POSTGRES=1`
//! makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use attest_config::{PostgresSslMode, PostgresTls};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use super::*;
use crate::store::InspectStore;
use crate::store::contract;

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The name in the server's certificate (with IP 127.0.0.1); reached with `hostaddr`.
const SERVER_NAME: &str = "db.attest.test";
const USER: &str = "attest_tls";
const PASSWORD: &str = "attest-tls-secret";

/// A CA and a server certificate it signed, plus an unrelated CA.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: String,
    server_key: String,
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca = make_ca("attest test CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![SERVER_NAME.into(), "127.0.0.1".into()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("server cert");
        let write = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).expect("write pem");
            p
        };
        Pki {
            ca: write("ca.pem", ca.pem()),
            other_ca: write("other-ca.pem", make_ca("unrelated CA").pem()),
            server_cert: cert.pem(),
            server_key: key.serialize_pem(),
        }
    }
}

/// A PostgreSQL server owned by one test; stopped when dropped.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
    pki: Pki,
    /// `Some("postgres")` when the server runs as that user (the test runs as root).
    run_as: Option<&'static str>,
    started: bool,
}

/// Runs a PostgreSQL binary, as `run_as` when set; the error carries its output.
fn pg_command(run_as: Option<&str>, bin: &str, args: &[&str]) -> Result<(), String> {
    let path = format!("{BIN}/{bin}");
    let mut cmd = match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", &path]);
            c
        }
        None => Command::new(&path),
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {bin}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{bin} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// `None` (after saying so) when PostgreSQL 15 is not installed and not required.
fn start_private_pg() -> Option<PrivatePg> {
    if !Path::new(BIN).join("initdb").exists() {
        let why = format!("no {BIN}/initdb");
        if std::env::var("ATTEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("PostgreSQL is required (ATTEST_REQUIRE_POSTGRES=1) but: {why}");
        }
        eprintln!("SKIPPED: no PostgreSQL 15 for the TLS tests ({why})");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let mut pg = PrivatePg {
        dir,
        port: free_port(),
        pki,
        run_as: is_root().then_some("postgres"),
        started: false,
    };
    pg.init()
        .unwrap_or_else(|e| panic!("private PostgreSQL: {e}"));
    pg.start()
        .unwrap_or_else(|e| panic!("private PostgreSQL: {e}"));
    Some(pg)
}

impl PrivatePg {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path_str(p: &Path) -> String {
        p.to_str().expect("utf-8 temp path").to_owned()
    }

    /// Gives the temp directory to the server's user (root only).
    fn chown(&self) -> Result<(), String> {
        let Some(user) = self.run_as else {
            return Ok(());
        };
        let status = Command::new("chown")
            .args(["-R", &format!("{user}:"), &Self::path_str(self.dir.path())])
            .status()
            .map_err(|e| format!("cannot run chown: {e}"))?;
        status.success().then_some(()).ok_or("chown failed".into())
    }

    fn init(&mut self) -> Result<(), String> {
        let pwfile = self.dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).map_err(|e| e.to_string())?;
        self.chown()?;
        let data = Self::path_str(&self.data());
        let pw = format!("--pwfile={}", Self::path_str(&pwfile));
        let args = [
            "-D",
            &data,
            "-U",
            USER,
            &pw,
            "-A",
            "scram-sha-256",
            "--no-sync",
        ];
        pg_command(self.run_as, "initdb", &args)?;
        self.configure()?;
        self.chown()
    }

    /// `ssl = on` with the test's certificate; TCP only over TLS (`hostssl`), the Unix
    /// socket (in the temp directory) for the test's own administration.
    fn configure(&self) -> Result<(), String> {
        let data = self.data();
        let write = |name: &str, text: &str| {
            std::fs::write(data.join(name), text).map_err(|e| format!("{name}: {e}"))
        };
        write("server.crt", &self.pki.server_cert)?;
        write("server.key", &self.pki.server_key)?;
        use std::os::unix::fs::PermissionsExt;
        let key = data.join("server.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )?;
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\nmax_connections = 60\n",
            self.port,
            Self::path_str(self.dir.path())
        );
        let mut text =
            std::fs::read_to_string(data.join("postgresql.conf")).map_err(|e| e.to_string())?;
        text.push_str(&conf);
        write("postgresql.conf", &text)
    }

    fn start(&mut self) -> Result<(), String> {
        let data = Self::path_str(&self.data());
        let log = Self::path_str(&self.dir.path().join("server.log"));
        let started = pg_command(
            self.run_as,
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-t", "60", "start"],
        );
        self.started = started.is_ok();
        started.map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    /// Runs `sql` as the superuser over the Unix socket (no TLS there).
    fn admin(&self, sql: &str) {
        let mut config = Config::new();
        config
            .host_path(self.dir.path())
            .port(self.port)
            .user(USER)
            .dbname("postgres");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, conn) = config.connect(NoTls).await.expect("admin connection");
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.expect("admin sql");
            drop(client);
            let _ = task.await;
        });
    }

    /// A fresh database.
    fn create_db(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("tls_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.admin(&format!("CREATE DATABASE {name}"));
        name
    }

    /// A URL for `db` that names `host` (for TLS) and connects to 127.0.0.1.
    fn url(&self, host: &str, db: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@{host}:{}/{db}?hostaddr=127.0.0.1",
            self.port
        )
    }

    fn tls(&self, mode: PostgresSslMode, ca: Option<&Path>) -> PostgresTls {
        PostgresTls {
            mode,
            root_cert: ca.map(Path::to_path_buf),
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if self.started {
            let data = Self::path_str(&self.data());
            if let Err(e) = pg_command(
                self.run_as,
                "pg_ctl",
                &["-D", &data, "-m", "fast", "-w", "stop"],
            ) {
                eprintln!("stopping the private PostgreSQL: {e}");
            }
        }
    }
}

/// Whether the store's own connection is encrypted, as the server sees it.
fn server_sees_tls(store: &PgStore) -> bool {
    store
        .run(|pool| async move {
            let mut c = pool.get().await?;
            let row = c
                .client()?
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await?;
            Ok(row.try_get::<_, bool>(0)?)
        })
        .expect("pg_stat_ssl")
}

fn connect_err(url: &str, tls: &PostgresTls) -> String {
    match PgStore::connect_with(url, tls) {
        Ok(_) => panic!("connecting with {:?} must fail", tls.mode),
        Err(e) => {
            eprintln!("refused as expected: {e}");
            e.to_string()
        }
    }
}

#[test]
fn contract_suite_passes_over_verify_full() {
    let Some(pg) = start_private_pg() else { return };
    let tls = pg.tls(PostgresSslMode::VerifyFull, Some(&pg.pki.ca));
    let first = PgStore::connect_with(&pg.url(SERVER_NAME, &pg.create_db()), &tls)
        .unwrap_or_else(|e| panic!("verify-full: {e}"));
    assert!(server_sees_tls(&first), "verify-full must encrypt");
    drop(first);
    contract::run_all(&|| {
        let url = pg.url(SERVER_NAME, &pg.create_db());
        let store = PgStore::connect_with(&url, &tls).unwrap_or_else(|e| panic!("{e}"));
        Box::new(store) as Box<dyn InspectStore>
    });
}

#[test]
fn sslmodes_against_a_server_that_admits_only_tls() {
    let Some(pg) = start_private_pg() else { return };
    let db = pg.create_db();
    let (ca, other_ca) = (Some(pg.pki.ca.as_path()), Some(pg.pki.other_ca.as_path()));
    let url = pg.url(SERVER_NAME, &db);
    let wrong_name = pg.url("other.attest.test", &db);

    // verify-full: the chain must lead to the configured CA and the name must match.
    let ip = pg.url("127.0.0.1", &db);
    let store = PgStore::connect_with(&ip, &pg.tls(PostgresSslMode::VerifyFull, ca))
        .unwrap_or_else(|e| panic!("verify-full by IP address: {e}"));
    assert!(server_sees_tls(&store));
    let err = connect_err(&url, &pg.tls(PostgresSslMode::VerifyFull, other_ca));
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(err.contains("postgres_sslmode = \"verify-full\""), "{err}");
    let err = connect_err(&wrong_name, &pg.tls(PostgresSslMode::VerifyFull, ca));
    assert!(err.contains("not valid for name"), "{err}");
    assert!(err.contains("other.attest.test"), "{err}");

    // verify-ca: the chain only; another name is accepted, another CA is not.
    let store = PgStore::connect_with(&wrong_name, &pg.tls(PostgresSslMode::VerifyCa, ca))
        .unwrap_or_else(|e| panic!("verify-ca with another name: {e}"));
    assert!(server_sees_tls(&store));
    let err = connect_err(&url, &pg.tls(PostgresSslMode::VerifyCa, other_ca));
    assert!(err.contains("UnknownIssuer"), "{err}");

    // require and prefer encrypt without checking the certificate.
    for mode in [PostgresSslMode::Require, PostgresSslMode::Prefer] {
        let store = PgStore::connect_with(&wrong_name, &pg.tls(mode, None))
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert!(
            server_sees_tls(&store),
            "{mode:?} must encrypt when offered"
        );
    }

    // disable: the server admits TCP only over TLS.
    let err = connect_err(&url, &pg.tls(PostgresSslMode::Disable, None));
    assert!(err.contains("no pg_hba.conf entry"), "{err}");
    assert!(err.contains("postgres_sslmode = \"disable\""), "{err}");
    assert!(
        !err.contains(PASSWORD),
        "the URL's password must not be echoed: {err}"
    );
}

#[test]
fn unusable_ca_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "postgres://u@127.0.0.1:1/db";
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    for (path, expect) in [
        (&missing, "cannot read"),
        (&empty, "holds no PEM certificate"),
    ] {
        let tls = PostgresTls {
            mode: PostgresSslMode::VerifyFull,
            root_cert: Some(path.clone()),
        };
        let err = connect_err(url, &tls);
        assert!(err.contains(expect), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
