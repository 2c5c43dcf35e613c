//! HTTP basic authentication against `basic_auth_users` (user → bcrypt hash).
//!
//! bcrypt is slow on purpose (cost 10 is tens of milliseconds), so a successful verification
//! is remembered by a SHA-256 of user, stored hash and presented password; later requests
//! with the same credentials cost one hash, not one bcrypt. Like exporter-toolkit.
//!
//! Invariants:
//! - The cost verified is the one in the stored hash (`bcrypt::non_truncating_verify` reads
//!   it from the hash); nothing here picks a cost.
//! - Only successful verifications are cached, and the cache never holds a password, only
//!   a digest that includes the stored hash; it is bounded ([`CACHE_CAP`]).
//! - An unknown user costs one bcrypt like a known one (against another user's hash), so
//!   timing does not tell which user names exist.
//! - One bcrypt runs at a time, off the async workers: a flood of wrong passwords uses one
//!   core, and cached logins are not queued behind it.
//! - Passwords of 72 bytes or more are refused (bcrypt would silently ignore the rest).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;

/// The `WWW-Authenticate` value of a 401 from a listener with basic authentication.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"attest\", charset=\"UTF-8\"";

/// Successful verifications remembered at most; the cache starts over when full.
pub const CACHE_CAP: usize = 1024;

/// Why a request's basic credentials are refused (always a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BasicRefusal {
    #[error("authentication required: send basic auth credentials (Authorization: Basic)")]
    Missing,
    #[error(
        "malformed Authorization header: expected 'Basic ' and base64 of 'user:password' (UTF-8)"
    )]
    Malformed,
    #[error("wrong user name or password")]
    Wrong,
}

/// User name and password from an `Authorization: Basic` header.
pub struct Credentials {
    pub user: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parses an `Authorization` header value; `Missing` when absent or of another scheme
    /// (a bearer token is not a wrong password).
    pub fn parse(header: Option<&str>) -> Result<Credentials, BasicRefusal> {
        let h = header.ok_or(BasicRefusal::Missing)?.trim();
        let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(BasicRefusal::Missing);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| BasicRefusal::Malformed)?;
        let text = String::from_utf8(raw).map_err(|_| BasicRefusal::Malformed)?;
        let (user, password) = text.split_once(':').ok_or(BasicRefusal::Malformed)?;
        Ok(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }
}

/// The configured users and the cache of verified credentials.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time.
    slow: tokio::sync::Semaphore,
}

impl BasicAuth {
    /// `None` when no user is configured (no basic authentication).
    pub fn new(users: &BTreeMap<String, String>) -> Option<BasicAuth> {
        (!users.is_empty()).then(|| BasicAuth {
            users: users.clone(),
            verified: Mutex::new(HashSet::new()),
            slow: tokio::sync::Semaphore::new(1),
        })
    }

    /// The configured user names.
    pub fn users(&self) -> Vec<&str> {
        self.users.keys().map(String::as_str).collect()
    }

    /// Checks an `Authorization` header value; `Ok` is the user name. A cache hit answers at
    /// once; otherwise bcrypt runs on a blocking thread, one at a time.
    pub async fn check(self: &Arc<Self>, header: Option<&str>) -> Result<String, BasicRefusal> {
        let creds = Credentials::parse(header)?;
        if self.cached(&creds) {
            return Ok(creds.user);
        }
        let _one = self.slow.acquire().await.map_err(|_| BasicRefusal::Wrong)?;
        let me = self.clone();
        let ok = tokio::task::spawn_blocking(move || me.verify(&creds).then_some(creds.user))
            .await
            .ok()
            .flatten();
        ok.ok_or(BasicRefusal::Wrong)
    }

    /// Whether these credentials were verified before.
    pub fn cached(&self, c: &Credentials) -> bool {
        let Some(hash) = self.users.get(&c.user) else {
            return false;
        };
        let key = cache_key(c, hash);
        self.lock().contains(&key)
    }

    /// Runs bcrypt (slow: call off the async workers); remembers a success.
    pub fn verify(&self, c: &Credentials) -> bool {
        let Some(hash) = self.users.get(&c.user) else {
            // Same work as a known user, so the answer's timing says nothing.
            if let Some(any) = self.users.values().next() {
                let _ = bcrypt::non_truncating_verify(&c.password, any);
            }
            return false;
        };
        let ok = bcrypt::non_truncating_verify(&c.password, hash).unwrap_or(false);
        if ok {
            let mut cache = self.lock();
            if cache.len() >= CACHE_CAP {
                cache.clear();
            }
            cache.insert(cache_key(c, hash));
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// SHA-256 over user, stored hash and password, each length-prefixed so no two different
/// triples give the same input.
fn cache_key(c: &Credentials, hash: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [c.user.as_bytes(), hash.as_bytes(), c.password.as_bytes()] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests;
