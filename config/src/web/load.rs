//! Reads a web configuration file (YAML, the exporter-toolkit format) into a [`WebConfig`].
//!
//! The YAML is parsed into a small tree with positions (`yaml.rs`) and walked by hand, so
//! every message names the file, the line and column, the key and what was expected.
//!
//! Invariants:
//! - Unknown keys are refused; known exporter-toolkit keys Attest does not implement are
//!   refused with the reason and what to do instead.
//! - Validation reports every problem it finds, in file order; a YAML syntax error stops at
//!   the first one (the parser cannot go on).
//! - Bcrypt hashes and secrets are never echoed in messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::yaml::{self, Node, Value};
use super::{ClientAuth, TlsVersion, WebConfig, WebTls};
use crate::load::{ConfigError, ConfigErrors, Location};

/// The response headers `http_server_config.headers` may set, as exporter-toolkit defines
/// them, with the values it accepts (`None`: any value).
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

const TOP_KEYS: &[&str] = &[
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
    "rate_limit",
];

const TLS_KEYS: &[&str] = &[
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
    "cert",
    "key",
    "client_ca",
    "client_allowed_sans",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
];

/// Keys of `tls_server_config` whose behaviour Attest does not have, and what to do instead.
const TLS_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "cert",
        "inline PEM is not supported; put it in a file and use cert_file",
    ),
    (
        "key",
        "inline PEM is not supported; put it in a file and use key_file",
    ),
    (
        "client_ca",
        "inline PEM is not supported; put it in a file and use client_ca_file",
    ),
    (
        "client_allowed_sans",
        "is not supported; issue client certificates from a CA of their own and name it in client_ca_file",
    ),
    (
        "cipher_suites",
        "is not supported; rustls offers only its safe default cipher suites",
    ),
    (
        "prefer_server_cipher_suites",
        "is not supported; remove it (rustls chooses among its safe default cipher suites)",
    ),
    (
        "curve_preferences",
        "is not supported; rustls offers only its safe default key-exchange groups",
    ),
];

/// Reads and validates a web configuration file.
pub fn load_web(path: &Path) -> Result<WebConfig, ConfigErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(ConfigError::whole_file(
            &name,
            format!("cannot read the web configuration file: {e}; check the path given to --web.config.file and its permissions"),
        ))
    })?;
    parse_web(&name, &src)
}

/// Validates web-configuration text; `file_name` names it in messages and its directory
/// anchors relative paths.
pub fn parse_web(file_name: &str, src: &str) -> Result<WebConfig, ConfigErrors> {
    let mut ctx = Ctx {
        file: file_name,
        base: crate::load::base_dir(Path::new(file_name)),
        errors: Vec::new(),
    };
    let root = match yaml::parse(src) {
        Ok(Some(root)) if !root.is_null() => root,
        Ok(_) => return Ok(WebConfig::default()),
        Err((at, msg)) => {
            let msg = format!(
                "invalid YAML: {msg}; expected the exporter-toolkit format, see docs/web-config.md"
            );
            return Err(ConfigErrors::single(ctx.error_at(at, "", msg)));
        }
    };
    let cfg = ctx.file_root(&root);
    match ConfigErrors::from_vec(ctx.errors) {
        Some(errors) => Err(errors),
        None => Ok(cfg),
    }
}

/// The file being checked and the problems found so far.
struct Ctx<'f> {
    file: &'f str,
    base: PathBuf,
    errors: Vec<ConfigError>,
}

/// The entries of a mapping that passed the key checks: key → (key node, value node).
type Entries<'n> = BTreeMap<&'n str, (&'n Node, &'n Node)>;

impl Ctx<'_> {
    fn error_at(&self, at: Option<Location>, path: &str, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            location: at,
            path: path.to_string(),
            message,
        }
    }

    fn error(&mut self, n: &Node, path: &str, message: impl Into<String>) {
        let e = self.error_at(Some(n.at), path, message.into());
        self.errors.push(e);
    }

    fn expected(&mut self, n: &Node, path: &str, what: &str) {
        let msg = format!("expected {what}, found {}", n.describe());
        self.error(n, path, msg);
    }

    /// A mapping's entries; unknown (when `allowed` is given), duplicate and non-string keys
    /// are errors and left out.
    fn map<'n>(&mut self, n: &'n Node, path: &str, allowed: Option<&[&str]>) -> Entries<'n> {
        let mut out = Entries::new();
        let Value::Map(pairs) = &n.value else {
            self.expected(n, path, "a mapping (key: value lines)");
            return out;
        };
        for (k, v) in pairs {
            let Value::Scalar { text: key, .. } = &k.value else {
                self.expected(k, path, "a key that is a string");
                continue;
            };
            let key_path = join(path, key);
            if let Some(allowed) = allowed.filter(|a| !a.contains(&key.as_str())) {
                let within = if path.is_empty() { "the file" } else { path };
                let msg = format!(
                    "unknown key {key:?} in {within} (expected one of: {})",
                    allowed.join(", ")
                );
                self.error(k, path, msg);
            } else if out.contains_key(key.as_str()) {
                self.error(k, &key_path, "expected each key once, found it again");
            } else {
                out.insert(key.as_str(), (k, v));
            }
        }
        out
    }

    /// A string value (a scalar that is not null).
    fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        match &n.value {
            Value::Scalar { text, .. } if !n.is_null() => Some(text.clone()),
            _ => {
                self.expected(n, path, "a string");
                None
            }
        }
    }

    fn file_root(&mut self, root: &Node) -> WebConfig {
        let top = self.map(root, "", Some(TOP_KEYS));
        if let Some((k, _)) = top.get("rate_limit") {
            self.error(
                k,
                "rate_limit",
                "is not supported by Attest; remove it (the collector bounds connections with [server] max_connections)",
            );
        }
        WebConfig {
            tls: top.get("tls_server_config").and_then(|(_, v)| self.tls(v)),
            headers: top
                .get("http_server_config")
                .map(|(_, v)| self.http(v))
                .unwrap_or_default(),
            basic_auth_users: top
                .get("basic_auth_users")
                .map(|(_, v)| self.users(v))
                .unwrap_or_default(),
        }
    }

    fn tls(&mut self, n: &Node) -> Option<WebTls> {
        const P: &str = "tls_server_config";
        let t = self.map(n, P, Some(TLS_KEYS));
        for (key, why) in TLS_UNSUPPORTED {
            if let Some((k, _)) = t.get(key) {
                self.error(k, &join(P, key), *why);
            }
        }
        let cert_file = self.required_path(n, &t, "cert_file");
        let key_file = self.required_path(n, &t, "key_file");
        let client_auth = self.client_auth(t.get("client_auth_type").map(|e| e.1));
        let min_version = self.version(&t, "min_version", TlsVersion::Tls12);
        let max_version = self.version(&t, "max_version", TlsVersion::Tls13);
        let client_ca_file = self.client_ca(n, &t, client_auth);
        if let (Some(min), Some(max), Some((_, v))) =
            (min_version, max_version, t.get("min_version"))
            && min > max
        {
            let msg = "expected a version at most max_version (TLS12 or TLS13, min_version <= max_version)";
            self.error(v, &join(P, "min_version"), msg);
        }
        Some(WebTls {
            cert_file: cert_file?,
            key_file: key_file?,
            client_ca_file: client_ca_file?,
            client_auth: client_auth?,
            min_version: min_version?,
            max_version: max_version?,
        })
    }

    fn path(&mut self, n: &Node, path: &str) -> Option<PathBuf> {
        let p = self.string(n, path)?;
        if p.trim().is_empty() {
            self.error(n, path, "expected a file name, found an empty string");
            return None;
        }
        let p = Path::new(&p);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        })
    }

    fn required_path(&mut self, section: &Node, t: &Entries<'_>, key: &str) -> Option<PathBuf> {
        match t.get(key) {
            Some((_, v)) => self.path(v, &join("tls_server_config", key)),
            None => {
                let msg = format!(
                    "missing key \"{key}\": TLS needs a certificate file and its private key file (PEM)"
                );
                self.error(section, "tls_server_config", msg);
                None
            }
        }
    }

    fn client_auth(&mut self, v: Option<&Node>) -> Option<ClientAuth> {
        let Some(v) = v else {
            return Some(ClientAuth::None);
        };
        let path = "tls_server_config.client_auth_type";
        match self.string(v, path)?.as_str() {
            "NoClientCert" => Some(ClientAuth::None),
            "VerifyClientCertIfGiven" => Some(ClientAuth::VerifyIfGiven),
            "RequireAndVerifyClientCert" => Some(ClientAuth::RequireAndVerify),
            other @ ("RequestClientCert" | "RequireAnyClientCert") => {
                self.error(v, path, format!("{other:?} accepts client certificates without verifying them, which Attest (rustls) does not do; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"));
                None
            }
            other => {
                self.error(v, path, format!("expected one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, found {other:?}"));
                None
            }
        }
    }

    /// `client_ca_file` is needed exactly when certificates are verified: a CA that is never
    /// used would look like protection that is not there.
    fn client_ca(
        &mut self,
        section: &Node,
        t: &Entries<'_>,
        auth: Option<ClientAuth>,
    ) -> Option<Option<PathBuf>> {
        let path = "tls_server_config.client_ca_file";
        match (auth?, t.get("client_ca_file")) {
            (ClientAuth::None, None) => Some(None),
            (ClientAuth::None, Some((_, ca))) => {
                self.error(ca, path, "is set but client_auth_type is NoClientCert, so no client certificate would be checked; set client_auth_type: RequireAndVerifyClientCert, or remove client_ca_file");
                None
            }
            (_, Some((_, ca))) => self.path(ca, path).map(Some),
            (_, None) => {
                self.error(section, "tls_server_config", "missing key \"client_ca_file\": client_auth_type verifies client certificates, which needs the CA (PEM) that signs them");
                None
            }
        }
    }

    fn version(&mut self, t: &Entries<'_>, key: &str, default: TlsVersion) -> Option<TlsVersion> {
        let Some((_, v)) = t.get(key) else {
            return Some(default);
        };
        let path = join("tls_server_config", key);
        match self.string(v, &path)?.as_str() {
            "TLS12" => Some(TlsVersion::Tls12),
            "TLS13" => Some(TlsVersion::Tls13),
            other @ ("TLS10" | "TLS11") => {
                self.error(v, &path, format!("{other:?} is not supported (rustls implements TLS 1.2 and 1.3 only); expected TLS12 or TLS13"));
                None
            }
            other => {
                self.error(
                    v,
                    &path,
                    format!("expected TLS12 or TLS13, found {other:?}"),
                );
                None
            }
        }
    }

    fn http(&mut self, n: &Node) -> Vec<(String, String)> {
        const P: &str = "http_server_config";
        let h = self.map(n, P, Some(&["http2", "headers"]));
        if let Some((_, v)) = h.get("http2") {
            match &v.value {
                Value::Scalar { text, plain: true } if text == "false" => {}
                Value::Scalar { text, plain: true } if text == "true" => {
                    self.error(v, "http_server_config.http2", "HTTP/2 is not supported (Attest serves HTTP/1.1); remove the key or set it to false");
                }
                _ => self.expected(v, "http_server_config.http2", "true or false"),
            }
        }
        let Some((_, headers)) = h.get("headers") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, (_, value)) in self.map(headers, "http_server_config.headers", None) {
            if let Some(v) = self.header(name, value) {
                out.push((name.to_string(), v));
            }
        }
        out
    }

    fn header(&mut self, name: &str, v: &Node) -> Option<String> {
        let path = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            let msg = format!(
                "expected one of the headers {}, found {name:?}",
                names.join(", ")
            );
            self.error(v, &path, msg);
            return None;
        };
        if v.is_null() {
            // exporter-toolkit: a blank value leaves the header unset.
            return None;
        }
        let value = self.string(v, &path)?.trim().to_string();
        if value.is_empty() {
            return None;
        }
        if value.chars().any(char::is_control) {
            self.error(
                v,
                &path,
                "expected a header value without control characters",
            );
            return None;
        }
        match allowed {
            Some(values) if !values.iter().any(|a| a.eq_ignore_ascii_case(&value)) => {
                let msg = format!("expected one of {}, found {value:?}", values.join(", "));
                self.error(v, &path, msg);
                None
            }
            _ => Some(value),
        }
    }

    fn users(&mut self, n: &Node) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (user, (_, hash)) in self.map(n, "basic_auth_users", None) {
            let path = join("basic_auth_users", user);
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                self.error(hash, &path, "expected a user name that is not empty and has no ':' or control characters (basic auth splits user and password at the first ':')");
                continue;
            }
            let Some(hash_text) = self.string(hash, &path) else {
                continue;
            };
            if let Err(why) = check_bcrypt(&hash_text) {
                self.error(hash, &path, format!("expected a bcrypt hash such as $2y$10$ followed by 53 characters ({why}); generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"));
                continue;
            }
            out.insert(user.to_string(), hash_text);
        }
        out
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks the shape of a bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`, a two-digit cost of
/// 4 to 31, `$`, 22 characters of salt and 31 of hash in bcrypt's base64), so a typo fails at
/// start instead of refusing every login. Says what is wrong without echoing the hash.
pub(crate) fn check_bcrypt(hash: &str) -> Result<(), &'static str> {
    let b = hash.as_bytes();
    if b.len() != 60 {
        return Err("a bcrypt hash has 60 characters");
    }
    if !(b.starts_with(b"$2a$")
        || b.starts_with(b"$2b$")
        || b.starts_with(b"$2x$")
        || b.starts_with(b"$2y$"))
    {
        return Err("it must start with $2a$, $2b$, $2x$ or $2y$");
    }
    let cost = std::str::from_utf8(&b[4..6])
        .ok()
        .and_then(|c| c.parse::<u32>().ok());
    if !matches!(cost, Some(4..=31)) || b[6] != b'$' {
        return Err("the cost after the version must be two digits from 04 to 31, then '$'");
    }
    let alphabet = |c: &u8| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/';
    if !b[7..].iter().all(alphabet) {
        return Err("salt and hash use only the characters ./A-Za-z0-9");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
