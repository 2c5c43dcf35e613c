//! Reads a web configuration file (YAML, the exporter-toolkit format) into a [`WebConfig`].
//!
//! The YAML is parsed into a small tree with positions (`yaml.rs`) and walked by hand, so
//! every message names the file, the line and column, the key and what was expected.
//!
//! Invariants:
//! - Unknown keys are refused; exporter-toolkit settings Attest cannot honour are refused
//!   with the reason and what to do instead (docs/web-config.md, "Differences from
//!   exporter-toolkit").
//! - Validation reports every problem it finds, in file order; a YAML syntax error stops at
//!   the first one (the parser cannot go on).
//! - Bcrypt hashes and secrets (inline keys) are never echoed in messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::time::Duration;

use super::yaml::{self, Node, Value};
use super::{
    CIPHER_SUITES, CURVES, CipherSuite, ClientAuth, Curve, Pem, RateLimit, TlsVersion, WebConfig,
    WebTls,
};
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

/// The TLS 1.2 suites one of which Go's HTTP/2 server requires in a `cipher_suites` list
/// (exporter-toolkit refuses to start without one unless `http2: false`).
const HTTP2_REQUIRED: &[u16] = &[0xc02f, 0xc02b];

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
        warnings: Vec::new(),
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
    warnings: Vec<String>,
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
        let (headers, http2) = top
            .get("http_server_config")
            .map_or((Vec::new(), true), |(_, v)| self.http(v));
        WebConfig {
            tls: top
                .get("tls_server_config")
                .and_then(|(_, v)| self.tls(v, http2)),
            headers,
            basic_auth_users: top
                .get("basic_auth_users")
                .map(|(_, v)| self.users(v))
                .unwrap_or_default(),
            rate_limit: top.get("rate_limit").and_then(|(_, v)| self.rate_limit(v)),
            warnings: std::mem::take(&mut self.warnings),
        }
    }

    fn tls(&mut self, n: &Node, http2: bool) -> Option<WebTls> {
        const P: &str = "tls_server_config";
        let t = self.map(n, P, Some(TLS_KEYS));
        let cert = self.pem(n, &t, "cert_file", "cert");
        let key = self.pem(n, &t, "key_file", "key");
        let client_ca = self.optional_pem(&t, "client_ca_file", "client_ca");
        let client_auth = self.client_auth(t.get("client_auth_type").map(|e| e.1));
        let min_version = self.version(&t, "min_version", TlsVersion::Tls12);
        let max_version = self.version(&t, "max_version", TlsVersion::Tls13);
        if let (Some(min), Some(max), Some((_, v))) =
            (min_version, max_version, t.get("min_version"))
            && min > max
        {
            let msg = "expected a version at most max_version (TLS12 or TLS13, min_version <= max_version)";
            self.error(v, &join(P, "min_version"), msg);
        }
        let sans = self.sans(&t);
        if let Some(auth) = client_auth {
            let listed = sans.as_ref().map(Option::is_some);
            self.check_client_policy(&t, auth, client_ca.as_ref(), listed);
        }
        let prefer = match t.get("prefer_server_cipher_suites") {
            None => Some(true),
            Some((_, v)) => self.bool(v, &join(P, "prefer_server_cipher_suites")),
        };
        let suites = self.cipher_suites(&t, min_version, max_version, http2);
        let curves = self.curves(&t);
        Some(WebTls {
            cert: cert?,
            key: key?,
            client_ca: client_ca?,
            client_auth: client_auth?,
            min_version: min_version?,
            max_version: max_version?,
            cipher_suites: suites?,
            prefer_server_cipher_suites: prefer?,
            curve_preferences: curves?,
            client_allowed_sans: sans?.unwrap_or_default(),
        })
    }

    /// The PEM of `file_key` (a path) or `inline_key` (the text): exactly one is needed.
    fn pem(
        &mut self,
        section: &Node,
        t: &Entries<'_>,
        file_key: &str,
        inline_key: &str,
    ) -> Option<Pem> {
        match self.optional_pem(t, file_key, inline_key)? {
            Some(pem) => Some(pem),
            None => {
                let msg = format!(
                    "missing key \"{file_key}\" (or \"{inline_key}\" with the PEM text): TLS needs a certificate and its private key (PEM)"
                );
                self.error(section, "tls_server_config", msg);
                None
            }
        }
    }

    /// `Some(None)` when neither key is set; `None` after an error.
    fn optional_pem(
        &mut self,
        t: &Entries<'_>,
        file_key: &str,
        inline_key: &str,
    ) -> Option<Option<Pem>> {
        const P: &str = "tls_server_config";
        match (t.get(file_key), t.get(inline_key)) {
            (None, None) => Some(None),
            (Some(_), Some((k, _))) => {
                let msg = format!(
                    "expected {file_key} or {inline_key}, not both (exporter-toolkit would use {file_key} and ignore {inline_key})"
                );
                self.error(k, &join(P, inline_key), msg);
                None
            }
            (Some((_, v)), None) => self.path(v, &join(P, file_key)).map(|p| Some(Pem::File(p))),
            (None, Some((_, v))) => {
                let path = join(P, inline_key);
                let text = match &v.value {
                    Value::Scalar { text, .. } if !v.is_null() => text.clone(),
                    _ => {
                        self.expected(v, &path, "PEM text");
                        return None;
                    }
                };
                if !text.contains("-----BEGIN ") {
                    self.error(v, &path, "expected PEM text (a block starting '-----BEGIN '); for a file name use the *_file key");
                    return None;
                }
                Some(Some(Pem::Inline(text)))
            }
        }
    }

    /// What the client-certificate policy allows with it: a CA and SANs only where
    /// certificates are verified (elsewhere they would look like protection that is not there).
    fn check_client_policy(
        &mut self,
        t: &Entries<'_>,
        auth: ClientAuth,
        ca: Option<&Option<Pem>>,
        sans_listed: Option<bool>,
    ) {
        const P: &str = "tls_server_config";
        let ca_key = t.get("client_ca_file").or_else(|| t.get("client_ca"));
        let ca_name = if t.contains_key("client_ca_file") {
            "client_ca_file"
        } else {
            "client_ca"
        };
        match auth {
            ClientAuth::None => {
                if let Some((_, ca)) = ca_key {
                    self.error(ca, &join(P, ca_name), format!("is set but client_auth_type is NoClientCert, so no client certificate would be checked; set client_auth_type: RequireAndVerifyClientCert, or remove {ca_name}"));
                }
                if let Some((k, _)) = t.get("client_allowed_sans") {
                    self.error(k, &join(P, "client_allowed_sans"), "is set but client_auth_type is NoClientCert, so no client certificate is asked for; set client_auth_type: RequireAndVerifyClientCert");
                }
            }
            ClientAuth::Request | ClientAuth::RequireAny => {
                if let Some((_, ca)) = ca_key {
                    self.error(ca, &join(P, ca_name), format!("is set but client_auth_type does not verify certificates, so the CA would never be used; set client_auth_type: RequireAndVerifyClientCert, or remove {ca_name}"));
                }
                if let Some((k, _)) = t.get("client_allowed_sans") {
                    self.error(k, &join(P, "client_allowed_sans"), "is set but client_auth_type does not verify certificates, so anyone could present a self-made certificate with an allowed SAN; set client_auth_type: RequireAndVerifyClientCert with client_ca_file");
                }
            }
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
                if matches!(ca, Some(None)) && auth == ClientAuth::RequireAndVerify {
                    self.warnings.push(format!("{}: tls_server_config: RequireAndVerifyClientCert without client_ca_file verifies client certificates against the system trust store, as exporter-toolkit does: any client certificate a public CA issued is accepted{}; name your own CA in client_ca_file to restrict access", self.file, if sans_listed == Some(true) { " when it has an allowed SAN" } else { "" }));
                }
            }
        }
    }

    /// `client_allowed_sans`: `Some(None)` when absent.
    fn sans(&mut self, t: &Entries<'_>) -> Option<Option<Vec<String>>> {
        let Some((_, v)) = t.get("client_allowed_sans") else {
            return Some(None);
        };
        let path = "tls_server_config.client_allowed_sans";
        let items = self.strings(v, path)?;
        if items.is_empty() {
            self.error(
                v,
                path,
                "expected at least one SAN (an empty list would refuse every client certificate)",
            );
            return None;
        }
        Some(Some(items))
    }

    /// A list of non-empty strings.
    fn strings(&mut self, n: &Node, path: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &n.value else {
            self.expected(n, path, "a list");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            match self.string(item, path) {
                Some(s) if !s.trim().is_empty() => out.push(s),
                Some(_) => {
                    self.error(item, path, "expected a name, found an empty string");
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `true` or `false`, written plain.
    fn bool(&mut self, n: &Node, path: &str) -> Option<bool> {
        match &n.value {
            Value::Scalar { text, plain: true } if text == "true" => Some(true),
            Value::Scalar { text, plain: true } if text == "false" => Some(false),
            _ => {
                self.expected(n, path, "true or false");
                None
            }
        }
    }

    /// `cipher_suites`: Go's names; what rustls lacks is left out (with a warning) as long as
    /// every TLS version the list restricts keeps a suite.
    fn cipher_suites(
        &mut self,
        t: &Entries<'_>,
        min: Option<TlsVersion>,
        max: Option<TlsVersion>,
        http2: bool,
    ) -> Option<Vec<CipherSuite>> {
        let Some((_, v)) = t.get("cipher_suites") else {
            return Some(Vec::new());
        };
        let path = "tls_server_config.cipher_suites";
        let names = self.strings(v, path)?;
        if names.is_empty() {
            // As in exporter-toolkit, an empty list changes nothing.
            return Some(Vec::new());
        }
        let mut suites: Vec<CipherSuite> = Vec::new();
        let mut ok = true;
        for name in &names {
            match CIPHER_SUITES.iter().find(|s| s.name == name.as_str()) {
                Some(s) if !suites.contains(s) => suites.push(*s),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = CIPHER_SUITES.iter().map(|s| s.name).collect();
                    self.error(
                        v,
                        path,
                        format!(
                            "unknown cipher suite {name:?} (expected Go's names: {})",
                            known.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        let (min, max) = (min?, max?);
        let tls12: Vec<&CipherSuite> = suites.iter().filter(|s| !s.tls13).collect();
        let usable12: Vec<&&CipherSuite> = tls12.iter().filter(|s| s.in_rustls).collect();
        let implemented: Vec<&str> = CIPHER_SUITES
            .iter()
            .filter(|s| s.in_rustls && !s.tls13)
            .map(|s| s.name)
            .collect();
        if min == TlsVersion::Tls12 && !tls12.is_empty() && usable12.is_empty() {
            self.error(v, path, format!("none of the TLS 1.2 cipher suites listed is implemented by rustls (it has no CBC and no RSA key-exchange suites), so TLS 1.2 clients could not connect; add one of {}, or set min_version: TLS13", implemented.join(", ")));
            return None;
        }
        if min == TlsVersion::Tls12 && tls12.is_empty() {
            if max == TlsVersion::Tls12 {
                self.error(v, path, format!("lists no TLS 1.2 cipher suite but max_version is TLS12, so no client could connect; add one of {}", implemented.join(", ")));
                return None;
            }
            self.warnings.push(format!("{}: {path}: lists no TLS 1.2 suite, so only TLS 1.3 clients can connect (as with exporter-toolkit, whose list applies to TLS 1.2 only); set min_version: TLS13 to say so", self.file));
        }
        if http2
            && min == TlsVersion::Tls12
            && !suites.iter().any(|s| HTTP2_REQUIRED.contains(&s.id))
        {
            self.error(v, path, "has neither TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 nor TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, which HTTP/2 over TLS 1.2 requires: exporter-toolkit refuses such a file unless http_server_config.http2 is false; add one of them, or set http2: false (Attest serves HTTP/1.1 either way)");
            return None;
        }
        let left_out: Vec<&str> = suites
            .iter()
            .filter(|s| !s.in_rustls)
            .map(|s| s.name)
            .collect();
        if !left_out.is_empty() {
            self.warnings.push(format!("{}: {path}: {} not offered: rustls does not implement CBC or RSA key-exchange suites", self.file, left_out.join(", ")));
        }
        Some(suites.into_iter().filter(|s| s.in_rustls).collect())
    }

    /// `curve_preferences`: exporter-toolkit's names; P-521 (not in rustls' ring provider)
    /// is left out with a warning while another curve remains.
    fn curves(&mut self, t: &Entries<'_>) -> Option<Vec<Curve>> {
        let Some((_, v)) = t.get("curve_preferences") else {
            return Some(Vec::new());
        };
        let path = "tls_server_config.curve_preferences";
        let names = self.strings(v, path)?;
        if names.is_empty() {
            return Some(Vec::new());
        }
        let mut curves: Vec<Curve> = Vec::new();
        let mut ok = true;
        for name in &names {
            match CURVES.iter().find(|c| c.name == name.as_str()) {
                Some(c) if !curves.contains(c) => curves.push(*c),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = CURVES.iter().map(|c| c.name).collect();
                    self.error(
                        v,
                        path,
                        format!(
                            "unknown curve {name:?} (expected one of {})",
                            known.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        let left_out: Vec<&str> = curves
            .iter()
            .filter(|c| !c.in_rustls)
            .map(|c| c.name)
            .collect();
        curves.retain(|c| c.in_rustls);
        if curves.is_empty() {
            self.error(v, path, "lists only CurveP521, which rustls' ring provider does not implement, so no client could connect; use CurveP384 (or X25519, CurveP256)");
            return None;
        }
        if !left_out.is_empty() {
            self.warnings.push(format!(
                "{}: {path}: {} not offered: rustls' ring provider has no P-521 key exchange",
                self.file,
                left_out.join(", ")
            ));
        }
        Some(curves)
    }

    /// `rate_limit`: `None` when absent, when the interval is zero (no limit, as in
    /// exporter-toolkit) or after an error.
    fn rate_limit(&mut self, n: &Node) -> Option<RateLimit> {
        const P: &str = "rate_limit";
        if n.is_null() {
            return None;
        }
        let r = self.map(n, P, Some(&["interval", "burst"]));
        let interval = match r.get("interval") {
            None => Some(Duration::ZERO),
            Some((_, v)) => self.go_duration(v, "rate_limit.interval"),
        };
        let burst = match r.get("burst") {
            None => Some(0),
            Some((_, v)) => {
                match &v.value {
                    Value::Scalar { text, plain: true } => match text.parse::<u32>() {
                        Ok(b) => Some(b),
                        Err(_) => {
                            self.error(v, "rate_limit.burst", format!("expected a whole number of requests (0 or more), found {text:?}"));
                            None
                        }
                    },
                    _ => {
                        self.expected(v, "rate_limit.burst", "a whole number of requests");
                        None
                    }
                }
            }
        };
        let (interval, burst) = (interval?, burst?);
        if interval.is_zero() {
            return None;
        }
        if burst == 0 {
            self.warnings.push(format!("{}: rate_limit: burst is 0, so every request is answered 429 Too Many Requests (as exporter-toolkit does); set burst to the requests allowed at once", self.file));
        }
        Some(RateLimit { interval, burst })
    }

    /// A Go duration (`1s`, `500ms`, `1m30s`, `0`); a bare number other than 0 is refused
    /// (Go would read it as nanoseconds).
    fn go_duration(&mut self, n: &Node, path: &str) -> Option<Duration> {
        let text = self.string(n, path)?;
        match parse_go_duration(text.trim()) {
            Ok(d) => Some(d),
            Err(why) => {
                self.error(
                    n,
                    path,
                    format!("expected a duration such as 1s, 500ms or 1m30s ({why})"),
                );
                None
            }
        }
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

    fn client_auth(&mut self, v: Option<&Node>) -> Option<ClientAuth> {
        let Some(v) = v else {
            return Some(ClientAuth::None);
        };
        let path = "tls_server_config.client_auth_type";
        match self.string(v, path)?.as_str() {
            "" | "NoClientCert" => Some(ClientAuth::None),
            "RequestClientCert" => Some(ClientAuth::Request),
            // "RequireClientCert": exporter-toolkit's older name, still accepted there.
            "RequireAnyClientCert" | "RequireClientCert" => Some(ClientAuth::RequireAny),
            "VerifyClientCertIfGiven" => Some(ClientAuth::VerifyIfGiven),
            "RequireAndVerifyClientCert" => Some(ClientAuth::RequireAndVerify),
            other => {
                self.error(v, path, format!("expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, found {other:?}"));
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

    /// The headers and whether `http2` is left on (exporter-toolkit's default).
    fn http(&mut self, n: &Node) -> (Vec<(String, String)>, bool) {
        const P: &str = "http_server_config";
        let h = self.map(n, P, Some(&["http2", "headers"]));
        let mut http2 = true;
        if let Some((_, v)) = h.get("http2") {
            match self.bool(v, "http_server_config.http2") {
                Some(false) => http2 = false,
                Some(true) => {
                    self.error(v, "http_server_config.http2", "HTTP/2 is not supported (Attest serves HTTP/1.1); remove the key or set it to false");
                }
                None => {}
            }
        }
        let Some((_, headers)) = h.get("headers") else {
            return (Vec::new(), http2);
        };
        let mut out = Vec::new();
        for (name, (_, value)) in self.map(headers, "http_server_config.headers", None) {
            if let Some(v) = self.header(name, value) {
                out.push((name.to_string(), v));
            }
        }
        (out, http2)
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
            // Exactly, as exporter-toolkit compares them.
            Some(values) if !values.contains(&value.as_str()) => {
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

/// Parses a Go duration (`time.ParseDuration`): `0`, or numbers with units `ns`, `us`/`µs`,
/// `ms`, `s`, `m`, `h`, e.g. `1h30m`, `1.5s`. Negative durations are refused.
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration, &'static str> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("it is empty");
    }
    if text.starts_with('-') {
        return Err("it must not be negative");
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("a number needs a unit: ns, us, ms, s, m or h")?;
        if num_len == 0 {
            return Err("expected a number before each unit");
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| "a number is malformed")?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err("units are ns, us, ms, s, m and h"),
        };
        rest = &rest[unit_len..];
        nanos += value * scale;
    }
    if !nanos.is_finite() || nanos > 1e18 {
        return Err("it is too long");
    }
    Ok(Duration::from_nanos(nanos as u64))
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
