//! Reads a web configuration file (YAML, the exporter-toolkit format) into a [`WebConfig`].
//!
//! The YAML is deserialized with serde-saphyr into raw structs whose values carry their
//! line and column (`Spanned`), then checked here, so every message names the file, the
//! position and what was expected.
//!
//! Invariants:
//! - Unknown keys are refused (`deny_unknown_fields`); known exporter-toolkit keys Attest
//!   does not implement are refused with the reason and what to do instead.
//! - Validation reports every problem it finds, in file order; a YAML syntax or type error
//!   stops at the first one (the parser cannot go on).
//! - Bcrypt hashes and secrets are never echoed in messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::{ClientAuth, TlsVersion, WebConfig, WebTls};
use crate::load::{ConfigError, ConfigErrors, Location};

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tls_server_config: Option<S<RawTls>>,
    http_server_config: Option<S<RawHttp>>,
    basic_auth_users: Option<S<BTreeMap<String, S<String>>>>,
    rate_limit: Option<S<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<S<String>>,
    key_file: Option<S<String>>,
    client_ca_file: Option<S<String>>,
    client_auth_type: Option<S<String>>,
    min_version: Option<S<String>>,
    max_version: Option<S<String>>,
    cert: Option<S<IgnoredAny>>,
    key: Option<S<IgnoredAny>>,
    client_ca: Option<S<IgnoredAny>>,
    client_allowed_sans: Option<S<IgnoredAny>>,
    cipher_suites: Option<S<IgnoredAny>>,
    prefer_server_cipher_suites: Option<S<IgnoredAny>>,
    curve_preferences: Option<S<IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<S<bool>>,
    headers: Option<BTreeMap<String, S<String>>>,
}

/// The response headers `http_server_config.headers` may set, as exporter-toolkit defines
/// them, with the values it accepts (`None`: any non-empty value).
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
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
    let raw = match parse_yaml(src) {
        Ok(raw) => raw,
        Err(e) => return Err(ConfigErrors::single(ctx.yaml_error(&e))),
    };
    if let Some(r) = &raw.rate_limit {
        ctx.error(
            r,
            "rate_limit",
            "is not supported by Attest; remove it (the collector bounds connections with [server] max_connections)",
        );
    }
    let tls = raw.tls_server_config.as_ref().and_then(|t| ctx.tls(t));
    let headers = raw
        .http_server_config
        .as_ref()
        .map(|h| ctx.http(&h.value))
        .unwrap_or_default();
    let basic_auth_users = raw
        .basic_auth_users
        .as_ref()
        .map(|u| ctx.users(u))
        .unwrap_or_default();
    match ConfigErrors::from_vec(ctx.errors) {
        Some(errors) => Err(errors),
        None => Ok(WebConfig {
            tls,
            basic_auth_users,
            headers,
        }),
    }
}

/// An empty file (or one of comments only) is an empty configuration, as in exporter-toolkit.
fn parse_yaml(src: &str) -> Result<RawFile, serde_saphyr::Error> {
    let blank = src
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if blank {
        return Ok(RawFile::default());
    }
    serde_saphyr::from_str(src)
}

/// The file being checked and the problems found so far.
struct Ctx<'f> {
    file: &'f str,
    base: PathBuf,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn at<T>(&self, v: &S<T>, path: &str, message: String) -> ConfigError {
        let loc = v.referenced;
        ConfigError {
            file: self.file.to_string(),
            location: (loc.line() > 0).then(|| Location {
                line: loc.line() as usize,
                column: loc.column() as usize,
            }),
            path: path.to_string(),
            message,
        }
    }

    fn error<T>(&mut self, v: &S<T>, path: &str, message: impl Into<String>) {
        let e = self.at(v, path, message.into());
        self.errors.push(e);
    }

    fn yaml_error(&self, e: &serde_saphyr::Error) -> ConfigError {
        let location = e.location().filter(|l| l.line() > 0).map(|l| Location {
            line: l.line() as usize,
            column: l.column() as usize,
        });
        ConfigError {
            file: self.file.to_string(),
            location,
            path: String::new(),
            message: format!(
                "invalid web configuration: {}; expected the exporter-toolkit format, see docs/web-config.md",
                yaml_message(e)
            ),
        }
    }

    fn path(&self, p: &S<String>) -> PathBuf {
        let p = Path::new(&p.value);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn required_path(
        &mut self,
        t: &S<RawTls>,
        v: Option<&S<String>>,
        key: &str,
    ) -> Option<PathBuf> {
        match v {
            Some(p) if !p.value.trim().is_empty() => Some(self.path(p)),
            Some(p) => {
                self.error(
                    p,
                    &format!("tls_server_config.{key}"),
                    "expected a file name, found an empty string",
                );
                None
            }
            None => {
                self.error(t, "tls_server_config", format!("missing key \"{key}\": TLS needs a certificate file and its private key file (PEM)"));
                None
            }
        }
    }

    fn tls(&mut self, t: &S<RawTls>) -> Option<WebTls> {
        self.unsupported_tls(&t.value);
        let cert_file = self.required_path(t, t.value.cert_file.as_ref(), "cert_file");
        let key_file = self.required_path(t, t.value.key_file.as_ref(), "key_file");
        let client_auth = self.client_auth(t.value.client_auth_type.as_ref());
        let min_version = self.version(
            t.value.min_version.as_ref(),
            "min_version",
            TlsVersion::Tls12,
        );
        let max_version = self.version(
            t.value.max_version.as_ref(),
            "max_version",
            TlsVersion::Tls13,
        );
        let client_ca_file = self.client_ca(t, client_auth);
        if let (Some(min), Some(max), Some(v)) = (min_version, max_version, &t.value.min_version)
            && min > max
        {
            let msg = "expected a version at most max_version (TLS12 or TLS13, min_version <= max_version)";
            self.error(v, "tls_server_config.min_version", msg);
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

    /// Keys of the format whose behaviour Attest does not have: refused with what to do.
    fn unsupported_tls(&mut self, t: &RawTls) {
        let inline = "inline PEM is not supported; put it in a file and use";
        let rows: [(&Option<S<IgnoredAny>>, &str, String); 7] = [
            (&t.cert, "cert", format!("{inline} cert_file")),
            (&t.key, "key", format!("{inline} key_file")),
            (&t.client_ca, "client_ca", format!("{inline} client_ca_file")),
            (&t.client_allowed_sans, "client_allowed_sans", "is not supported; issue client certificates from a CA of their own and name it in client_ca_file".into()),
            (&t.cipher_suites, "cipher_suites", "is not supported; rustls offers only its safe default cipher suites".into()),
            (&t.prefer_server_cipher_suites, "prefer_server_cipher_suites", "is not supported; remove it (rustls chooses among its safe default cipher suites)".into()),
            (&t.curve_preferences, "curve_preferences", "is not supported; rustls offers only its safe default key-exchange groups".into()),
        ];
        for (v, key, msg) in rows {
            if let Some(v) = v {
                self.error(v, &format!("tls_server_config.{key}"), msg);
            }
        }
    }

    fn client_auth(&mut self, v: Option<&S<String>>) -> Option<ClientAuth> {
        let Some(v) = v else {
            return Some(ClientAuth::None);
        };
        let path = "tls_server_config.client_auth_type";
        match v.value.as_str() {
            "NoClientCert" => Some(ClientAuth::None),
            "VerifyClientCertIfGiven" => Some(ClientAuth::VerifyIfGiven),
            "RequireAndVerifyClientCert" => Some(ClientAuth::RequireAndVerify),
            "RequestClientCert" | "RequireAnyClientCert" => {
                self.error(v, path, format!("{:?} accepts client certificates without verifying them, which Attest (rustls) does not do; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file", v.value));
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
    fn client_ca(&mut self, t: &S<RawTls>, auth: Option<ClientAuth>) -> Option<Option<PathBuf>> {
        let ca = t.value.client_ca_file.as_ref();
        match (auth?, ca) {
            (ClientAuth::None, None) => Some(None),
            (ClientAuth::None, Some(ca)) => {
                self.error(ca, "tls_server_config.client_ca_file", "is set but client_auth_type is NoClientCert, so no client certificate would be checked; set client_auth_type: RequireAndVerifyClientCert, or remove client_ca_file");
                None
            }
            (_, Some(ca)) => Some(Some(self.path(ca))),
            (_, None) => {
                self.error(t, "tls_server_config", "missing key \"client_ca_file\": client_auth_type verifies client certificates, which needs the CA (PEM) that signs them");
                None
            }
        }
    }

    fn version(
        &mut self,
        v: Option<&S<String>>,
        key: &str,
        default: TlsVersion,
    ) -> Option<TlsVersion> {
        let Some(v) = v else {
            return Some(default);
        };
        let path = format!("tls_server_config.{key}");
        match v.value.as_str() {
            "TLS12" => Some(TlsVersion::Tls12),
            "TLS13" => Some(TlsVersion::Tls13),
            "TLS10" | "TLS11" => {
                self.error(v, &path, format!("{:?} is not supported (rustls implements TLS 1.2 and 1.3 only); expected TLS12 or TLS13", v.value));
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

    fn http(&mut self, h: &RawHttp) -> Vec<(String, String)> {
        if let Some(v) = h.http2.as_ref().filter(|v| v.value) {
            self.error(v, "http_server_config.http2", "HTTP/2 is not supported (Attest serves HTTP/1.1); remove the key or set it to false");
        }
        let mut out = Vec::new();
        for (name, value) in h.headers.iter().flatten() {
            if let Some(v) = self.header(name, value) {
                out.push((name.clone(), v));
            }
        }
        out
    }

    fn header(&mut self, name: &str, v: &S<String>) -> Option<String> {
        let path = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            self.error(
                v,
                &path,
                format!(
                    "expected one of the headers {}, found {name:?}",
                    names.join(", ")
                ),
            );
            return None;
        };
        let value = v.value.trim();
        if value.is_empty() {
            // exporter-toolkit: a blank value leaves the header unset.
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
            Some(values) if !values.iter().any(|a| a.eq_ignore_ascii_case(value)) => {
                self.error(
                    v,
                    &path,
                    format!("expected one of {}, found {value:?}", values.join(", ")),
                );
                None
            }
            _ => Some(value.to_string()),
        }
    }

    fn users(&mut self, u: &S<BTreeMap<String, S<String>>>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (user, hash) in &u.value {
            let path = format!("basic_auth_users.{user}");
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                self.error(hash, &path, "expected a user name that is not empty and has no ':' or control characters (basic auth splits user and password at the first ':')");
                continue;
            }
            if let Err(why) = check_bcrypt(&hash.value) {
                self.error(hash, &path, format!("expected a bcrypt hash such as $2y$10$ followed by 53 characters ({why}); generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"));
                continue;
            }
            out.insert(user.clone(), hash.value.clone());
        }
        out
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

/// The parser's message without its source snippet, its own "at line L, column C" (the
/// `file:line:column` prefix says where) and advice about the parser's options.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let mut msg = text.lines().next().unwrap_or_default().trim();
    if let Some(i) = msg.rfind(" at line ") {
        msg = &msg[..i];
    }
    msg.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace("expected mapping start", "expected a mapping (key: value)")
}

#[cfg(test)]
mod tests;
