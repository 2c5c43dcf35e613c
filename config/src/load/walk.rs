//! Walking a spanned TOML tree with an error accumulator.
//!
//! Invariants:
//! - A reader never stops the walk: on a bad value it records one error (with the value's
//!   position, what was expected and what was found) and returns `None`, so the caller can
//!   keep going and the user sees every problem of the file at once.
//! - A missing optional key is not an error; the caller applies the documented default.
//! - Every table is checked against its list of allowed keys ([`Ctx::deny_unknown`]).

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::ConfigError;

pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// The file being loaded and the errors found so far.
pub(crate) struct Ctx<'s> {
    file: String,
    src: &'s str,
    base_dir: PathBuf,
    pub(crate) errors: Vec<ConfigError>,
}

/// A table of the file together with where it is and how to name it in messages.
#[derive(Clone)]
pub(crate) struct Section<'a, 'i> {
    pub table: &'a DeTable<'i>,
    pub span: Range<usize>,
    /// Key path used as the message prefix, e.g. `check[2]`.
    pub path: String,
    /// How the table is written in the file, e.g. `[[check]]` or `tls`.
    pub display: String,
}

impl<'a, 'i> Section<'a, 'i> {
    pub fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.table.get(key)
    }

    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Span of a key's name (better than the value's for "conflicting key" errors).
    pub fn key_span(&self, key: &str) -> Range<usize> {
        self.table
            .get_key_value(key)
            .map_or(self.span.clone(), |(k, _)| k.span())
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The environment variable systemd sets to the unit's credentials directory.
pub(crate) const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// `p` with a leading `$CREDENTIALS_DIRECTORY/` or `${CREDENTIALS_DIRECTORY}/` replaced by
/// `dir`; `Ok(None)` when `p` does not start so; an error when it does and `dir` is unset or
/// not absolute (no other variable is expanded: a path is otherwise taken literally).
pub(crate) fn under_credentials(
    p: &str,
    dir: Option<&std::ffi::OsStr>,
) -> Result<Option<PathBuf>, String> {
    let Some(rest) = ["$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"]
        .iter()
        .find_map(|prefix| p.strip_prefix(prefix))
    else {
        return Ok(None);
    };
    match dir.map(Path::new) {
        Some(d) if d.is_absolute() && !rest.is_empty() => Ok(Some(d.join(rest))),
        Some(d) if d.is_absolute() => Err(format!(
            "expected a file name after the credentials directory, found {p:?}"
        )),
        _ => Err(format!(
            "{p:?} is under $CREDENTIALS_DIRECTORY, which is not set (or not an absolute path): systemd sets it for a unit with LoadCredential= (docs/deploy.md); outside systemd set it yourself or give a plain path"
        )),
    }
}

/// The candidate closest to a misspelt `word`, when it is close enough to be what was meant
/// (Jaro-Winkler similarity at least 0.85: `intervall` → `interval`, `timezone` →
/// `time_zone`, `listen_addr` → `listen`, but nothing for an unrelated word).
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    const CLOSE: f64 = 0.85;
    let (best, score) = candidates
        .iter()
        .map(|c| (*c, strsim::jaro_winkler(&word.to_ascii_lowercase(), c)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (score >= CLOSE).then_some(best)
}

/// How a value is shown after "found": strings quoted, other scalars with their type.
pub(crate) fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("{:?}", s.as_ref()),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(a) if a.is_empty() => "an empty array".to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

impl<'s> Ctx<'s> {
    pub fn new(file: &str, src: &'s str, base_dir: PathBuf) -> Self {
        Ctx {
            file: file.to_string(),
            src,
            base_dir,
            errors: Vec::new(),
        }
    }

    /// The text being loaded.
    pub fn src(&self) -> &'s str {
        self.src
    }

    pub fn error(&mut self, span: Range<usize>, path: &str, message: impl Into<String>) {
        let e = ConfigError::at(&self.file, self.src, &span, path, message.into());
        self.errors.push(e);
    }

    /// Records "expected {what}, found {value}" at the value.
    pub fn expected(&mut self, v: &Val<'_>, path: &str, what: &str) {
        let msg = format!("expected {what}, found {}", describe(v.get_ref()));
        self.error(v.span(), path, msg);
    }

    /// Relative paths in a file mean "next to this file", so that a configuration
    /// directory can be moved or shipped as a whole.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        };
        let cleaned: PathBuf = joined
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect();
        if cleaned.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            cleaned
        }
    }

    /// Reports every key of `sec` that is not in `allowed`.
    /// A close allowed key is suggested ("did you mean"), as cargo does.
    pub fn deny_unknown(&mut self, sec: &Section<'_, '_>, allowed: &[&str]) {
        for (k, _) in sec.table {
            let key: &str = k.get_ref().as_ref();
            if !allowed.contains(&key) {
                let hint = did_you_mean(key, allowed)
                    .map(|s| format!(": did you mean {s:?}?"))
                    .unwrap_or_default();
                let msg = format!(
                    "unknown key {key:?} in {}{hint} (expected one of: {})",
                    sec.display,
                    allowed.join(", ")
                );
                self.error(k.span(), &sec.path, msg);
            }
        }
    }

    /// Reports a rule between two keys at whichever of them the file sets (the first
    /// when both are set); each comes with what it should have been given the other.
    pub fn conflict(&mut self, sec: &Section<'_, '_>, a: (&str, String), b: (&str, String)) {
        let fallback = format!("expected {}", a.1);
        for (key, what) in [a, b] {
            if let Some(v) = sec.get(key) {
                self.expected(v, &sec.key_path(key), &what);
                return;
            }
        }
        self.error(sec.span.clone(), &sec.path, fallback);
    }

    /// Span of a key's value, or of its table when the key is absent.
    pub fn value_span(sec: &Section<'_, '_>, key: &str) -> Range<usize> {
        sec.get(key).map_or(sec.span.clone(), toml::Spanned::span)
    }

    pub fn missing(&mut self, sec: &Section<'_, '_>, key: &str, what: &str) {
        let msg = format!("missing key {key:?} in {} ({what})", sec.display);
        self.error(sec.span.clone(), &sec.path, msg);
    }

    /// A sub-table `[name]` of `parent`; `None` (no error) when absent.
    pub fn table<'a, 'i>(
        &mut self,
        parent: &Section<'a, 'i>,
        key: &str,
        display: &str,
    ) -> Option<Section<'a, 'i>> {
        let v = parent.get(key)?;
        self.as_section(v, parent.key_path(key), display.to_string())
    }

    pub fn as_section<'a, 'i>(
        &mut self,
        v: &'a Val<'i>,
        path: String,
        display: String,
    ) -> Option<Section<'a, 'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(Section {
                table: t,
                span: v.span(),
                path,
                display,
            }),
            _ => {
                self.expected(v, &path, "a table");
                None
            }
        }
    }

    /// The tables of `[[key]]` (an array of tables), with paths `key[0]`, `key[1]`...
    pub fn tables<'a, 'i>(
        &mut self,
        parent: &Section<'a, 'i>,
        key: &str,
        display: &str,
    ) -> Vec<Section<'a, 'i>> {
        let Some(v) = parent.get(key) else {
            return Vec::new();
        };
        let path = parent.key_path(key);
        let Some(items) = self.array(v, &path, &format!("an array of tables {display}")) else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                self.as_section(item, format!("{path}[{i}]"), display.to_string())
            })
            .collect()
    }

    pub fn array<'a, 'i>(
        &mut self,
        v: &'a Val<'i>,
        path: &str,
        what: &str,
    ) -> Option<&'a [Val<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.expected(v, path, what);
                None
            }
        }
    }

    // ------------------------------------------------------------ scalar readers

    pub fn str_value<'v>(&mut self, v: &'v Val<'_>, path: &str) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.expected(v, path, "a string");
                None
            }
        }
    }

    pub fn string(&mut self, sec: &Section<'_, '_>, key: &str) -> Option<String> {
        let v = sec.get(key)?;
        self.str_value(v, &sec.key_path(key)).map(str::to_string)
    }

    /// A string that must not be empty or only whitespace.
    pub fn non_empty(&mut self, sec: &Section<'_, '_>, key: &str) -> Option<String> {
        let v = sec.get(key)?;
        let path = sec.key_path(key);
        let s = self.str_value(v, &path)?;
        if s.trim().is_empty() {
            self.expected(v, &path, "a non-empty string");
            return None;
        }
        Some(s.to_string())
    }

    pub fn bool(&mut self, sec: &Section<'_, '_>, key: &str) -> Option<bool> {
        let v = sec.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.expected(v, &sec.key_path(key), "true or false");
                None
            }
        }
    }

    pub fn int_value(&mut self, v: &Val<'_>, path: &str, min: u64, max: u64) -> Option<u64> {
        let what = format!("an integer from {min} to {max}");
        let DeValue::Integer(i) = v.get_ref() else {
            self.expected(v, path, &what);
            return None;
        };
        match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n >= i128::from(min) && n <= i128::from(max) => u64::try_from(n).ok(),
            _ => {
                self.expected(v, path, &what);
                None
            }
        }
    }

    pub fn int(&mut self, sec: &Section<'_, '_>, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = sec.get(key)?;
        self.int_value(v, &sec.key_path(key), min, max)
    }

    pub fn u32(&mut self, sec: &Section<'_, '_>, key: &str, min: u32, max: u32) -> Option<u32> {
        self.int(sec, key, u64::from(min), u64::from(max))
            .and_then(|n| u32::try_from(n).ok())
    }

    pub fn usize(
        &mut self,
        sec: &Section<'_, '_>,
        key: &str,
        min: usize,
        max: usize,
    ) -> Option<usize> {
        self.int(sec, key, min as u64, max as u64)
            .and_then(|n| usize::try_from(n).ok())
    }

    /// A finite, non-negative number (integer or float).
    pub fn number_value(&mut self, v: &Val<'_>, path: &str) -> Option<f64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() && n >= 0.0 => Some(n),
            _ => {
                self.expected(v, path, "a non-negative number");
                None
            }
        }
    }

    /// A string parsed by `parse`, whose `Err` says what was expected.
    pub fn parsed<T>(
        &mut self,
        sec: &Section<'_, '_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = sec.get(key)?;
        self.parsed_value(v, &sec.key_path(key), parse)
    }

    /// Like [`Ctx::parsed`] for a value that may hold a secret (a database URL with its
    /// password): the message says what was expected but does not repeat what was found,
    /// since configuration errors end up in logs and terminals.
    pub fn parsed_secret<T>(
        &mut self,
        sec: &Section<'_, '_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = sec.get(key)?;
        let path = sec.key_path(key);
        let result = match v.get_ref() {
            DeValue::String(s) => parse(s),
            _ => Err(parse("").err().unwrap_or_else(|| "a string".to_string())),
        };
        result
            .map_err(|what| {
                let msg = format!(
                    "expected {what}, found a value not shown here (it may hold a password)"
                );
                self.error(v.span(), &path, msg);
            })
            .ok()
    }

    /// Like [`Ctx::parsed`] but reports a missing key; `what` says what the key is for.
    pub fn required_parsed<T>(
        &mut self,
        sec: &Section<'_, '_>,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        if sec.get(key).is_none() {
            self.missing(sec, key, what);
            return None;
        }
        self.parsed(sec, key, parse)
    }

    pub fn parsed_value<T>(
        &mut self,
        v: &Val<'_>,
        path: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let DeValue::String(s) = v.get_ref() else {
            // Every parser rejects the empty string with its expectation; asking it keeps
            // the message about the format ("a duration like ...") rather than "a string".
            let what = parse("").err().unwrap_or_else(|| "a string".to_string());
            self.expected(v, path, &what);
            return None;
        };
        match parse(s) {
            Ok(t) => Some(t),
            Err(what) => {
                self.expected(v, path, &what);
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(
        &mut self,
        sec: &Section<'_, '_>,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let v = sec.get(key)?;
        let path = sec.key_path(key);
        let what = format!(
            "one of {}",
            options
                .iter()
                .map(|(n, _)| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let s = match v.get_ref() {
            DeValue::String(s) => s.as_ref(),
            _ => {
                self.expected(v, &path, &what);
                return None;
            }
        };
        match options.iter().find(|(n, _)| *n == s) {
            Some((_, t)) => Some(*t),
            None => {
                self.expected(v, &path, &what);
                None
            }
        }
    }

    /// A path, resolved against the configuration file's directory.
    /// A path, relative to the configuration file's directory; one that starts with
    /// `$CREDENTIALS_DIRECTORY/` (or `${CREDENTIALS_DIRECTORY}/`) is under the directory
    /// systemd passes credentials in (`LoadCredential=`), read from the environment.
    pub fn path(&mut self, sec: &Section<'_, '_>, key: &str) -> Option<PathBuf> {
        let p = self.non_empty(sec, key)?;
        let dir = std::env::var_os(CREDENTIALS_DIRECTORY);
        match under_credentials(&p, dir.as_deref()) {
            Ok(Some(expanded)) => Some(expanded),
            Ok(None) => Some(self.resolve(&p)),
            Err(why) => {
                let v = sec.get(key)?;
                self.error(v.span(), &sec.key_path(key), why);
                None
            }
        }
    }

    /// A size: an integer number of bytes or a string like `"256MiB"`.
    pub fn bytes(&mut self, sec: &Section<'_, '_>, key: &str) -> Option<u64> {
        let v = sec.get(key)?;
        let path = sec.key_path(key);
        if matches!(v.get_ref(), DeValue::Integer(_)) {
            return self.int_value(v, &path, 1, u64::MAX);
        }
        self.parsed_value(v, &path, super::values::positive_bytes)
    }

    /// A secret given inline (`key`) or in a file (`file_key`, relative to the
    /// configuration file, trailing whitespace ignored). Keeping secrets in their own file
    /// lets the configuration be world-readable and versioned while the token is not.
    /// `None` when neither key is present; setting both is an error.
    pub fn secret(&mut self, sec: &Section<'_, '_>, key: &str, file_key: &str) -> Option<String> {
        if sec.get(key).is_some() && sec.get(file_key).is_some() {
            let msg = format!("set either {key:?} or {file_key:?}, not both");
            self.error(sec.key_span(file_key), &sec.path, msg);
            return None;
        }
        if sec.get(key).is_some() {
            return self.non_empty(sec, key);
        }
        let v = sec.get(file_key)?;
        let path = self.path(sec, file_key)?;
        let key_path = sec.key_path(file_key);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim_end().to_string()),
            Ok(_)
                if std::env::var_os(CREDENTIALS_DIRECTORY)
                    .is_some_and(|d| !d.is_empty() && path.starts_with(d)) =>
            {
                let msg = format!(
                    "{} is empty: the credential's source file (LoadCredential= of the unit) is missing or empty; put the token in it",
                    path.display()
                );
                self.error(v.span(), &key_path, msg);
                None
            }
            Ok(_) => {
                let msg = format!("{} is empty; put the token in it", path.display());
                self.error(v.span(), &key_path, msg);
                None
            }
            Err(e) => {
                let msg = format!(
                    "cannot read {}: {e}; check the path (relative paths start at the configuration file's directory) and permissions",
                    path.display()
                );
                self.error(v.span(), &key_path, msg);
                None
            }
        }
    }

    /// Both or neither of a certificate/key pair.
    pub fn pair(
        &mut self,
        sec: &Section<'_, '_>,
        a: &str,
        b: &str,
    ) -> (Option<PathBuf>, Option<PathBuf>) {
        let (pa, pb) = (self.path(sec, a), self.path(sec, b));
        match (sec.get(a).is_some(), sec.get(b).is_some()) {
            (true, false) => self.missing(sec, b, &format!("{a:?} needs {b:?}")),
            (false, true) => self.missing(sec, a, &format!("{b:?} needs {a:?}")),
            _ => {}
        }
        (pa, pb)
    }

    /// An array of non-empty strings.
    pub fn strings(&mut self, sec: &Section<'_, '_>, key: &str) -> Option<Vec<String>> {
        let v = sec.get(key)?;
        let path = sec.key_path(key);
        let items = self.array(v, &path, "an array of strings")?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            match item.get_ref() {
                DeValue::String(s) if !s.trim().is_empty() => out.push(s.to_string()),
                _ => self.expected(item, &p, "a non-empty string"),
            }
        }
        Some(out)
    }

    /// A table whose values are all strings (headers, header matchers).
    pub fn string_map(
        &mut self,
        sec: &Section<'_, '_>,
        key: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let v = sec.get(key)?;
        let path = sec.key_path(key);
        let DeValue::Table(t) = v.get_ref() else {
            self.expected(v, &path, "a table of strings");
            return None;
        };
        let mut out = std::collections::BTreeMap::new();
        for (k, val) in t {
            let p = join(&path, k.get_ref());
            if let Some(s) = self.str_value(val, &p) {
                out.insert(k.get_ref().to_string(), s.to_string());
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{did_you_mean, under_credentials};
    use std::ffi::OsStr;
    use std::path::PathBuf;

    #[test]
    fn a_path_may_start_in_the_credentials_directory() {
        let dir = Some(OsStr::new("/run/credentials/attest-agent.service"));
        let want = PathBuf::from("/run/credentials/attest-agent.service/agent.token");
        for p in [
            "$CREDENTIALS_DIRECTORY/agent.token",
            "${CREDENTIALS_DIRECTORY}/agent.token",
        ] {
            assert_eq!(under_credentials(p, dir), Ok(Some(want.clone())), "{p}");
        }
        assert_eq!(under_credentials("/etc/attest/agent.token", dir), Ok(None));
        assert_eq!(
            under_credentials("tokens/$CREDENTIALS_DIRECTORY/x", dir),
            Ok(None)
        );
        let unset = under_credentials("${CREDENTIALS_DIRECTORY}/agent.token", None).unwrap_err();
        assert!(
            unset.contains("not set") && unset.contains("LoadCredential="),
            "{unset}"
        );
        let relative = under_credentials("$CREDENTIALS_DIRECTORY/t", Some(OsStr::new("creds")));
        assert!(relative.is_err());
        assert!(under_credentials("$CREDENTIALS_DIRECTORY/", dir).is_err());
    }

    #[test]
    fn a_close_key_is_suggested_and_an_unrelated_one_is_not() {
        let check = [
            "id",
            "kind",
            "interval",
            "timeout",
            "address",
            "tls",
            "steps",
            "ip_family",
        ];
        assert_eq!(did_you_mean("intervall", &check), Some("interval"));
        assert_eq!(did_you_mean("Interval", &check), Some("interval"));
        assert_eq!(did_you_mean("timout", &check), Some("timeout"));
        assert_eq!(did_you_mean("colour", &check), None);
        assert_eq!(
            did_you_mean("spol", &["agent", "spool", "transport", "check"]),
            Some("spool")
        );
        assert_eq!(
            did_you_mean("timezone", &["name", "checks", "target", "time_zone"]),
            Some("time_zone")
        );
        assert_eq!(
            did_you_mean("scope", &["name", "token", "token_file"]),
            None
        );
        assert_eq!(did_you_mean("x", &[]), None);
    }
}
