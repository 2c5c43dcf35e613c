//! A fresh PostgreSQL database for a test, dropped afterwards: used by the store's own
//! tests and (feature `test-support`) by the end-to-end tests in `tests/`.
//!
//! The server is `ATTEST_TEST_POSTGRES_URL` (a role that may create databases), or else the
//! role `attest_test` on 127.0.0.1:5432, created with `su postgres -c psql` when it does not
//! exist yet. Without a server the test skips loudly; `ATTEST_REQUIRE_POSTGRES=1` (set by
//! `scripts/test`) makes that a failure.
//!
//! Invariants: loopback (or the given URL) only; each database has a unique name per
//! process and counter and is dropped, connections and all, when the handle drops; admin
//! statements run on a thread and runtime of their own, so they may be called from async
//! tests as well as plain ones.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Config, NoTls};

const TEST_ROLE_URL: &str = "postgres://attest_test:attest_test@127.0.0.1:5432/postgres";

const BOOTSTRAP_SQL: &str = "DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'attest_test') THEN
    CREATE ROLE attest_test LOGIN CREATEDB PASSWORD 'attest_test';
  ELSE
    ALTER ROLE attest_test LOGIN CREATEDB PASSWORD 'attest_test';
  END IF;
END $$;";

/// Runs `sql` on the database at `url`, on a thread of its own.
pub fn admin_exec(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let config: Config = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
            let task = tokio::spawn(conn);
            let out = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = task.await;
            out
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}

/// The single integer `sql` answers on the database at `url`, on a thread of its own.
pub fn admin_count(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let config: Config = url.parse().expect("URL");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, conn) = config.connect(NoTls).await.expect("connect");
            let task = tokio::spawn(conn);
            let n: i64 = client
                .query_one(&sql, &[])
                .await
                .and_then(|r| r.try_get(0))
                .expect("count");
            drop(client);
            let _ = task.await;
            n
        })
    })
    .join()
    .expect("the admin thread")
}

fn bootstrap_role() -> Result<(), String> {
    let mut child = Command::new("su")
        .args([
            "postgres",
            "-c",
            "psql -X -q -v ON_ERROR_STOP=1 -d postgres",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run su postgres: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(BOOTSTRAP_SQL.as_bytes())
            .map_err(|e| format!("cannot feed psql: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("psql did not finish: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "creating the test role failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The URL of a role that may create databases, or why there is none.
fn admin_url() -> &'static Result<String, String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("ATTEST_TEST_POSTGRES_URL") {
            return admin_exec(&url, "SELECT 1").map(|()| url);
        }
        if admin_exec(TEST_ROLE_URL, "SELECT 1").is_err() {
            bootstrap_role()?;
        }
        admin_exec(TEST_ROLE_URL, "SELECT 1").map(|()| TEST_ROLE_URL.to_owned())
    })
}

/// A fresh database; dropped with its connections when this goes out of scope.
pub struct TestDb {
    admin: String,
    name: String,
    /// Where the collectors and the test's own store connect.
    pub url: String,
}

impl TestDb {
    /// `None` (after saying so on stderr) when no server is reachable and none is required.
    pub fn create() -> Option<TestDb> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin = match admin_url() {
            Ok(url) => url.clone(),
            Err(why) => {
                if std::env::var("ATTEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!("PostgreSQL is required (ATTEST_REQUIRE_POSTGRES=1) but: {why}");
                }
                eprintln!(
                    "SKIPPED: no PostgreSQL ({why}); start it with `pg_ctlcluster 15 main start`, \
                     or set ATTEST_REQUIRE_POSTGRES=1 to fail"
                );
                return None;
            }
        };
        let name = format!(
            "attest_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin_exec(&admin, &format!("CREATE DATABASE {name}")).expect("create test database");
        let url = url_for_database(&admin, &name);
        Some(TestDb { admin, name, url })
    }

    pub fn store(&self) -> super::PgStore {
        super::PgStore::connect(&self.url).expect("connect to the test database")
    }
}

/// The admin URL pointed at database `name` (its last path segment is the database).
fn url_for_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let base = match base.rsplit_once('/') {
        Some((head, _)) if head.contains("//") && head.len() > "postgres://".len() => head,
        _ => base,
    };
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin_exec(&self.admin, &sql) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_for_database;

    #[test]
    fn urls_point_at_the_test_database() {
        assert_eq!(
            url_for_database("postgres://u:p@127.0.0.1:5432/postgres", "t1"),
            "postgres://u:p@127.0.0.1:5432/t1"
        );
        assert_eq!(
            url_for_database("postgres://u:p@h/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
    }
}
