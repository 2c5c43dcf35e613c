//! `[status]`: who may read the live status page.
//!
//! Invariants:
//! - `public = true` names the services anyone may see (`services`, at least one, each a
//!   `[[service]]` of this file, each once): a public page never shows a service nobody chose.
//! - `services` without `public = true` is refused: it would suggest a restriction that the
//!   credentialed page (every service) does not apply.

use super::walk::{Ctx, Section};
use crate::model::StatusConfig;

pub(crate) fn status(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    known: Option<&[String]>,
) -> Option<StatusConfig> {
    ctx.deny_unknown(sec, &["public", "services"]);
    let before = ctx.errors.len();
    let public = ctx.bool(sec, "public").unwrap_or(false);
    let services = match (sec.get("services"), public) {
        (None, true) => {
            ctx.missing(
                sec,
                "services",
                "public = true needs the services anyone may see, like services = [\"webshop\"]",
            );
            Vec::new()
        }
        (None, false) => Vec::new(),
        (Some(_), false) => {
            let msg = "\"services\" is only used with public = true (the page with a read \
                       credential shows every service); set public = true or remove it";
            ctx.error(
                Ctx::value_span(sec, "services"),
                &sec.key_path("services"),
                msg,
            );
            Vec::new()
        }
        (Some(v), true) => names(ctx, sec, v, known),
    };
    (ctx.errors.len() == before).then_some(StatusConfig { public, services })
}

/// The listed service names: each a `[[service]]` of the file (when those could be read),
/// each once, at least one.
fn names(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    v: &super::walk::Val<'_>,
    known: Option<&[String]>,
) -> Vec<String> {
    let path = sec.key_path("services");
    let Some(items) = ctx.array(v, &path, "an array of service names like [\"webshop\"]") else {
        return Vec::new();
    };
    if items.is_empty() {
        ctx.expected(v, &path, "at least one service name");
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(name) = ctx.str_value(item, &p) else {
            continue;
        };
        if out.iter().any(|n| n == name) {
            ctx.error(item.span(), &p, format!("{name:?} is listed twice"));
        } else if known.is_some_and(|k| !k.iter().any(|n| n == name)) {
            ctx.expected(item, &p, "the name of a [[service]] of this file");
        } else {
            out.push(name.to_string());
        }
    }
    out
}
