//! The agent's signing key: an Ed25519 key pair that signs the digest of every batch
//! (docs/wire.md, "Agent keys"), so the collector and an auditor can tell the agent's
//! measurements from anything written into the collector's store.
//!
//! Invariants:
//! - `[agent] signing_key_file`, when set, must name a readable key; the agent never falls
//!   back to a key of its own (that would be a silent key swap the collector refuses).
//! - Without it, the key is `<spool.dir>/agent.key`: created once, at first start, from the
//!   operating system's random source, written 0600 with `O_EXCL` and fsynced with its
//!   directory; afterwards only read. An unreadable or corrupt key stops the agent with the
//!   path and the reason; it is never replaced.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use attest_config::AgentConfig;
use attest_config::evidence::keys::{self, PublicKey, SecretKey};

/// File name of the agent's own key in its spool directory.
pub const KEY_FILE: &str = "agent.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot {op} the signing key {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the signing key {path} is unusable: {source}; restore it from a backup, or remove it to create a new key (the collector then refuses the new key until its [[agent]] public_key is updated)"
    )]
    Bad {
        path: PathBuf,
        #[source]
        source: keys::KeyError,
    },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// A loaded key and where it came from.
pub struct AgentKey {
    pub secret: SecretKey,
    pub path: PathBuf,
    /// Whether this call created the file.
    pub created: bool,
}

impl AgentKey {
    pub fn public(&self) -> PublicKey {
        keys::public_of(&self.secret)
    }
}

/// Where the configuration says the key is.
pub fn key_path(cfg: &AgentConfig) -> PathBuf {
    cfg.agent
        .signing_key_file
        .clone()
        .unwrap_or_else(|| cfg.spool.dir.join(KEY_FILE))
}

/// Reads the configured key; creates the agent's own key when `create` is set, none is
/// configured and none exists yet.
pub fn load(cfg: &AgentConfig, create: bool) -> Result<AgentKey, KeyFileError> {
    let path = key_path(cfg);
    let own = cfg.agent.signing_key_file.is_none();
    match fs::read_to_string(&path) {
        Ok(text) => parse(&path, &text, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound && own && create => create_key(&path),
        Err(source) => Err(KeyFileError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

fn parse(path: &Path, text: &str, created: bool) -> Result<AgentKey, KeyFileError> {
    let secret = keys::parse_secret(text).map_err(|source| KeyFileError::Bad {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(AgentKey {
        secret,
        path: path.to_path_buf(),
        created,
    })
}

/// Draws a seed, writes it (0600, `O_EXCL`: two racing starts cannot both write), fsyncs
/// the file and its directory, then reads it back like any key.
fn create_key(path: &Path) -> Result<AgentKey, KeyFileError> {
    let io_err = |op| {
        let path = path.to_path_buf();
        move |source| KeyFileError::Io { op, path, source }
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
    let secret = keys::secret_from_seed(&seed);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("create the directory of"))?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create"))?;
    f.write_all(keys::secret_text(&secret).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err("write"))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync the directory of"))?;
    }
    let text = fs::read_to_string(path).map_err(io_err("read back"))?;
    parse(path, &text, true)
}

/// What `attest-agent key show` prints: the public key (paste it into the collector's
/// `[[agent]] public_key`), its fingerprint and the file.
pub fn show(key: &AgentKey) -> String {
    let public = key.public();
    format!(
        "{public}\nfingerprint {}\nfile {}\n",
        public.fingerprint(),
        key.path.display()
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(dir: &Path, key_file: Option<PathBuf>) -> AgentConfig {
        let text = format!(
            "[agent]\nid = \"a\"\ncollector_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\n{}[spool]\ndir = \"{}\"\n",
            key_file.map_or(String::new(), |p| format!(
                "signing_key_file = \"{}\"\n",
                p.display()
            )),
            dir.join("spool").display()
        );
        attest_config::parse_agent("agent.toml", &text).expect("config")
    }

    #[test]
    fn own_key_is_created_once_0600_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), None);
        let err = load(&cfg, false).err().expect("no key without create");
        assert!(err.to_string().contains("agent.key"), "{err}");
        let first = load(&cfg, true).expect("created");
        assert!(first.created);
        let mode = fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load(&cfg, true).expect("read");
        assert!(!again.created);
        assert_eq!(again.public(), first.public());
        let shown = show(&again);
        assert!(shown.starts_with("ed25519:"), "{shown}");
        assert!(shown.contains(&first.public().fingerprint()), "{shown}");
    }

    #[test]
    fn a_corrupt_own_key_stops_the_agent_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), None);
        let path = load(&cfg, true).unwrap().path;
        fs::write(&path, "not a key\n").unwrap();
        let err = load(&cfg, true).err().expect("refused");
        assert!(err.to_string().contains("unusable"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "not a key\n",
            "never replaced"
        );
    }

    #[test]
    fn a_configured_key_must_exist_and_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("given.key");
        let cfg = config(dir.path(), Some(file.clone()));
        assert!(load(&cfg, true).is_err(), "a named file is never created");
        assert!(!file.exists());
        let secret = keys::secret_from_seed(&[9; 32]);
        fs::write(&file, keys::secret_text(&secret)).unwrap();
        let k = load(&cfg, true).expect("given key");
        assert_eq!(k.public(), keys::public_of(&secret));
        assert!(!dir.path().join("spool").join(KEY_FILE).exists());
    }
}
