//! Central check assignment in the collector file: agent `labels`, central `[[check]]`
//! tables and `[[assign]]` rules; and the reader of an assignment an agent receives.
//!
//! Syntax (collector.toml):
//!
//! ```toml
//! [[agent]]
//! id = "web-01"
//! token_file = "tokens/web-01"
//! labels = { site = "ams", role = "web" }
//!
//! [[check]]                     # same keys as in agent.toml
//! id = "shop-home"
//! kind = "http"
//! url = "https://shop.example/"
//!
//! [[assign]]
//! match = { role = "web" }      # every agent whose labels contain all of these
//! agents = ["db-01"]            # and/or agents by id
//! checks = ["shop-home"]
//! ```
//!
//! Invariants:
//! - An `[[assign]]` names at least one selector (`match` or `agents`) and at least one
//!   check; every named agent is an `[[agent]]` and every named check a central `[[check]]`.
//! - Central check ids are unique; an assignment lists a check once.
//! - Paths inside a central check (`tls.ca_file`, `tls.client_cert`, `tls.client_key`) are
//!   absolute: the check runs on another host, where "next to collector.toml" means nothing.
//! - A central check's `source` is its own table re-serialised as a one-check TOML document;
//!   the agent validates exactly that text with [`checks_file`].

use std::collections::{BTreeMap, HashMap};

use toml::de::DeValue;

use super::check;
use super::values;
use super::walk::{Ctx, Section};
use crate::model::{AssignRule, CentralCheck, Check};

/// Keys of a check's TLS options that hold paths.
const PATH_KEYS: &[&str] = &["ca_file", "client_cert", "client_key"];

/// `labels = { key = "value" }` of an `[[agent]]`; empty when absent.
pub(crate) fn labels(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    key: &str,
) -> BTreeMap<String, String> {
    let Some(v) = sec.get(key) else {
        return BTreeMap::new();
    };
    let path = sec.key_path(key);
    let DeValue::Table(t) = v.get_ref() else {
        ctx.expected(
            v,
            &path,
            "a table of labels like { site = \"ams\", role = \"web\" }",
        );
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (k, val) in t {
        let name = k.get_ref().to_string();
        let p = format!("{path}.{name}");
        if values::ident(&name).is_err() {
            let msg = format!(
                "expected a label name of letters, digits and - _ . : / (at most 128 characters), found {name:?}"
            );
            ctx.error(k.span(), &p, msg);
            continue;
        }
        if let Some(s) = ctx.str_value(val, &p) {
            out.insert(name, s.to_string());
        }
    }
    out
}

/// The central `[[check]]` tables, each with its source text.
pub(crate) fn central_checks(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
) -> Option<Vec<CentralCheck>> {
    let sections = ctx.tables(root, "check", "[[check]]");
    // The file parsed as a tree already; this second parse only recovers each table as text.
    let doc: Option<toml::Table> = ctx.src().parse().ok();
    let sources = doc
        .as_ref()
        .and_then(|d| d.get("check"))
        .and_then(|v| v.as_array());
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    let mut ok = true;
    for (i, sec) in sections.iter().enumerate() {
        let absolute = absolute_paths(ctx, sec);
        let Some(c) = check::check(ctx, sec) else {
            ok = false;
            continue;
        };
        if let Some(first) = seen.get(&c.id) {
            let msg = format!(
                "expected a unique id, found {:?} (also used by {first})",
                c.id
            );
            ctx.error(Ctx::value_span(sec, "id"), &sec.key_path("id"), msg);
            ok = false;
            continue;
        }
        let source = sources.and_then(|a| a.get(i)).and_then(source_of);
        let Some(source) = source.filter(|_| absolute) else {
            ok = false;
            continue;
        };
        seen.insert(c.id.clone(), sec.path.clone());
        out.push(CentralCheck { check: c, source });
    }
    ok.then_some(out)
}

/// One check table as a document of its own: `[[check]]` followed by its keys.
fn source_of(table: &toml::Value) -> Option<String> {
    let mut doc = toml::Table::new();
    doc.insert("check".into(), toml::Value::Array(vec![table.clone()]));
    toml::to_string(&doc).ok()
}

/// Reports relative paths in a central check's `tls` table; `true` when there are none.
fn absolute_paths(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> bool {
    let Some(tls) = sec.get("tls") else {
        return true;
    };
    let DeValue::Table(t) = tls.get_ref() else {
        return true;
    };
    let mut ok = true;
    for key in PATH_KEYS {
        let Some(v) = t.get(*key) else { continue };
        if let DeValue::String(s) = v.get_ref()
            && !std::path::Path::new(s.as_ref()).is_absolute()
        {
            let what = "an absolute path (a central check runs on the agent's host)";
            ctx.expected(v, &format!("{}.tls.{key}", sec.path), what);
            ok = false;
        }
    }
    ok
}

/// The `[[assign]]` rules, checked against the agents and central checks of the file.
pub(crate) fn assignments(
    ctx: &mut Ctx<'_>,
    root: &Section<'_, '_>,
    agent_ids: Option<&[String]>,
    check_ids: Option<&[String]>,
) -> Option<Vec<AssignRule>> {
    let mut out = Vec::new();
    let mut ok = true;
    for sec in ctx.tables(root, "assign", "[[assign]]") {
        match rule(ctx, &sec, agent_ids, check_ids) {
            Some(r) => out.push(r),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn rule(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    agent_ids: Option<&[String]>,
    check_ids: Option<&[String]>,
) -> Option<AssignRule> {
    ctx.deny_unknown(sec, &["match", "agents", "checks"]);
    let before = ctx.errors.len();
    let labels = labels(ctx, sec, "match");
    if let Some(v) = sec.get("match")
        && labels.is_empty()
        && ctx.errors.len() == before
    {
        ctx.expected(
            v,
            &sec.key_path("match"),
            "at least one label like { role = \"web\" }",
        );
    }
    let agents = ids(
        ctx,
        sec,
        "agents",
        agent_ids,
        "an [[agent]] id of this file",
    );
    if sec.get("match").is_none() && sec.get("agents").is_none() {
        ctx.missing(
            sec,
            "match",
            "or \"agents\": which agents get these checks, like match = { role = \"web\" }",
        );
    }
    let checks = match sec.get("checks") {
        None => {
            ctx.missing(sec, "checks", "the ids of central [[check]] tables to run");
            None
        }
        Some(_) => ids(
            ctx,
            sec,
            "checks",
            check_ids,
            "the id of a [[check]] of this file",
        ),
    };
    if let (Some(v), Some(c)) = (sec.get("checks"), &checks)
        && c.is_empty()
    {
        ctx.expected(v, &sec.key_path("checks"), "at least one check id");
    }
    (ctx.errors.len() == before).then_some(AssignRule {
        agents: agents.unwrap_or_default(),
        labels,
        checks: checks?,
    })
}

/// An array of ids, each once and each in `known` (when the known list could be read).
fn ids(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    key: &str,
    known: Option<&[String]>,
    what: &str,
) -> Option<Vec<String>> {
    let v = sec.get(key)?;
    let path = sec.key_path(key);
    let items = ctx.array(v, &path, "an array of ids like [\"web-01\"]")?;
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(id) = ctx.parsed_value(item, &p, values::ident) else {
            continue;
        };
        if out.contains(&id) {
            ctx.error(item.span(), &p, format!("{id:?} is listed twice"));
        } else if known.is_some_and(|k| !k.contains(&id)) {
            ctx.expected(item, &p, what);
        } else {
            out.push(id);
        }
    }
    Some(out)
}

/// An assignment document as an agent receives it: only `[[check]]` tables.
pub(crate) fn checks_file(ctx: &mut Ctx<'_>, root: &Section<'_, '_>) -> Option<Vec<Check>> {
    ctx.deny_unknown(root, &["check"]);
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for sec in ctx.tables(root, "check", "[[check]]") {
        let Some(c) = check::check(ctx, &sec) else {
            continue;
        };
        if seen.contains(&c.id) {
            let msg = format!("expected a unique id, found {:?}", c.id);
            ctx.error(Ctx::value_span(&sec, "id"), &sec.key_path("id"), msg);
            continue;
        }
        seen.push(c.id.clone());
        out.push(c);
    }
    Some(out)
}
