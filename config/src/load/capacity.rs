//! `hosts` and `capacity = [...]` of a `[[service]]`: which hosts serve the service and
//! the capacity levels agreed for it.
//!
//! Invariants:
//! - Each objective names a known kind and a statistic, and carries exactly the keys that
//!   statistic uses (`max` for p95/max/average; `threshold` + `max_minutes` for
//!   minutes_above; `threshold` + `min_days` for days_to_threshold); others are refused.
//! - Objective names are unique within a service (they label metrics); a default name is
//!   `kind[resource]:statistic`.
//! - `hosts` entries are agent ids, each once; that they name an `[[agent]]` and that
//!   `min_days` lies within `[capacity] forecast_horizon` is checked by the collector
//!   file ([`cross_check`]), which knows the other sections.

use toml::de::DeValue;

use super::values;
use super::walk::{Ctx, Section};
use crate::model::{
    AgentAuth, CAPACITY_KINDS, CapacityConfig, CapacityObjective, CapacityRule, CapacityStatistic,
    Service,
};

/// Kinds that are one value per host, without a resource.
const WHOLE_HOST: &[&str] = &["cpu", "memory", "swap"];

const COMMON: &[&str] = &[
    "name",
    "kind",
    "resource",
    "statistic",
    "only_service_hours",
    "exclude_maintenance",
    "min_coverage",
];

const STATISTICS: &[(&str, Stat)] = &[
    ("p95", Stat::Level(CapacityStatistic::P95)),
    ("max", Stat::Level(CapacityStatistic::Max)),
    ("average", Stat::Level(CapacityStatistic::Average)),
    ("minutes_above", Stat::MinutesAbove),
    ("days_to_threshold", Stat::DaysToThreshold),
];

/// Longest month in minutes (31 days).
const MONTH_MINUTES: u64 = 31 * 1_440;

#[derive(Debug, Clone, Copy)]
enum Stat {
    Level(CapacityStatistic),
    MinutesAbove,
    DaysToThreshold,
}

impl Stat {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Stat::Level(_) => &["max"],
            Stat::MinutesAbove => &["threshold", "max_minutes"],
            Stat::DaysToThreshold => &["threshold", "min_days"],
        }
    }
}

/// `hosts = ["agent-id", ...]`: ids, each once; absent = empty (the measuring agents).
pub(crate) fn hosts(ctx: &mut Ctx<'_>, sec: &Section<'_, '_>) -> Option<Vec<String>> {
    let Some(v) = sec.get("hosts") else {
        return Some(Vec::new());
    };
    let path = sec.key_path("hosts");
    let items = ctx.array(v, &path, "an array of agent ids like [\"web-01\"]")?;
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match ctx.parsed_value(item, &p, values::ident) {
            Some(id) if out.contains(&id) => {
                ctx.error(item.span(), &p, format!("host {id:?} is listed twice"));
                ok = false;
            }
            Some(id) => out.push(id),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `capacity = [{ kind, statistic, ... }, ...]`.
pub(crate) fn objectives(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
) -> Option<Vec<CapacityObjective>> {
    let mut out: Vec<CapacityObjective> = Vec::new();
    let mut ok = true;
    for o in ctx.tables(sec, "capacity", "capacity objective") {
        let Some(obj) = objective(ctx, &o) else {
            ok = false;
            continue;
        };
        if out.iter().any(|x| x.name == obj.name) {
            let msg = format!(
                "expected a unique objective name, found {:?}; set \"name\" to tell them apart",
                obj.name
            );
            ctx.error(Ctx::value_span(&o, "name"), &o.key_path("name"), msg);
            ok = false;
            continue;
        }
        out.push(obj);
    }
    ok.then_some(out)
}

fn objective(ctx: &mut Ctx<'_>, o: &Section<'_, '_>) -> Option<CapacityObjective> {
    let kinds: Vec<(&str, &str)> = CAPACITY_KINDS.iter().map(|k| (*k, *k)).collect();
    if o.get("kind").is_none() {
        ctx.missing(o, "kind", "one of cpu, memory, swap, filesystem, network");
    }
    let kind = ctx.choice(o, "kind", &kinds);
    if o.get("statistic").is_none() {
        ctx.missing(
            o,
            "statistic",
            "p95, max, average, minutes_above or days_to_threshold",
        );
    }
    let stat = ctx.choice(o, "statistic", STATISTICS);
    if let (Some(stat), Some(DeValue::String(word))) =
        (stat, o.get("statistic").map(toml::Spanned::get_ref))
    {
        let allowed: Vec<&str> = COMMON.iter().chain(stat.keys()).copied().collect();
        let typed = Section {
            display: format!("{} with statistic {:?}", o.display, word.as_ref()),
            ..o.clone()
        };
        ctx.deny_unknown(&typed, &allowed);
    }
    let resource = resource(ctx, o, kind);
    let rule = rule(ctx, o, stat?);
    let only_service_hours = ctx.bool(o, "only_service_hours").unwrap_or(false);
    let exclude_maintenance = ctx.bool(o, "exclude_maintenance").unwrap_or(false);
    let min_coverage = ctx.parsed(o, "min_coverage", values::positive_percent);
    let (kind, resource, rule) = (kind?, resource?, rule?);
    let name = match o.get("name") {
        Some(_) => ctx.parsed(o, "name", objective_name)?,
        None => default_name(kind, resource.as_deref(), &rule),
    };
    Some(CapacityObjective {
        name,
        kind: kind.to_string(),
        resource,
        rule,
        only_service_hours,
        exclude_maintenance,
        min_coverage,
    })
}

/// `Some(None)` when absent; refused on whole-host kinds, which have no resource.
fn resource(ctx: &mut Ctx<'_>, o: &Section<'_, '_>, kind: Option<&str>) -> Option<Option<String>> {
    let Some(v) = o.get("resource") else {
        return Some(None);
    };
    let r = ctx.non_empty(o, "resource")?;
    if let Some(k) = kind.filter(|k| WHOLE_HOST.contains(k)) {
        let what = format!("no resource for kind {k:?} (one value per host)");
        ctx.expected(v, &o.key_path("resource"), &what);
        return None;
    }
    Some(Some(r))
}

fn rule(ctx: &mut Ctx<'_>, o: &Section<'_, '_>, stat: Stat) -> Option<CapacityRule> {
    let threshold = |ctx: &mut Ctx<'_>| {
        ctx.required_parsed(
            o,
            "threshold",
            "the utilisation the statistic looks at, like \"85%\"",
            values::positive_percent,
        )
    };
    let required_int = |ctx: &mut Ctx<'_>, key: &str, what: &str, min: u64, max: u64| {
        if o.get(key).is_none() {
            ctx.missing(o, key, what);
            return None;
        }
        ctx.int(o, key, min, max)
    };
    match stat {
        Stat::Level(statistic) => {
            let max = ctx.required_parsed(
                o,
                "max",
                "the highest agreed utilisation, like \"70%\"",
                values::positive_percent,
            );
            Some(CapacityRule::Level {
                statistic,
                max: max?,
            })
        }
        Stat::MinutesAbove => {
            let threshold = threshold(ctx);
            let max_minutes = required_int(
                ctx,
                "max_minutes",
                "the most minutes a month may spend above the threshold",
                0,
                MONTH_MINUTES,
            );
            Some(CapacityRule::MinutesAbove {
                threshold: threshold?,
                max_minutes: max_minutes?,
            })
        }
        Stat::DaysToThreshold => {
            let threshold = threshold(ctx);
            let min_days = required_int(
                ctx,
                "min_days",
                "the fewest days the trend may leave until the threshold",
                1,
                3_650,
            );
            Some(CapacityRule::DaysToThreshold {
                threshold: threshold?,
                min_days: u32::try_from(min_days?).ok()?,
            })
        }
    }
}

fn objective_name(s: &str) -> Result<String, String> {
    let ok = !s.trim().is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control);
    if ok {
        Ok(s.to_string())
    } else {
        Err("a non-empty name of at most 128 characters without control characters".into())
    }
}

/// `cpu:p95`, `filesystem[/var]:max`.
fn default_name(kind: &str, resource: Option<&str>, rule: &CapacityRule) -> String {
    match resource {
        Some(r) => format!("{kind}[{r}]:{}", rule.statistic()),
        None => format!("{kind}:{}", rule.statistic()),
    }
}

/// `hosts_match = { role = "web" }`: adds every `[[agent]]` whose labels contain all of
/// these (in the file's agent order, after the ids of `hosts`, each once) to the service's
/// hosts, resolved here so the engine sees only ids. A selector that matches no agent is an
/// error: an empty result would silently fall back to "the agents that measured its checks".
pub(crate) fn hosts_by_labels(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    service: &mut Service,
    agents: Option<&[AgentAuth]>,
) -> bool {
    let Some(v) = sec.get("hosts_match") else {
        return true;
    };
    let selector = super::fleet::labels(ctx, sec, "hosts_match");
    let Some(agents) = agents else {
        return true;
    };
    let path = sec.key_path("hosts_match");
    if selector.is_empty() {
        ctx.expected(v, &path, "at least one label like { role = \"web\" }");
        return false;
    }
    let matched: Vec<&AgentAuth> = agents
        .iter()
        .filter(|a| {
            selector
                .iter()
                .all(|(k, want)| a.labels.get(k) == Some(want))
        })
        .collect();
    if matched.is_empty() {
        ctx.expected(
            v,
            &path,
            "labels that at least one [[agent]] of this file has",
        );
        return false;
    }
    for a in matched {
        if !service.hosts.contains(&a.id) {
            service.hosts.push(a.id.clone());
        }
    }
    true
}

/// Rules between a service and the rest of the file: every host names an `[[agent]]`
/// (when the agents loaded), and a forecast objective's `min_days` lies within
/// `[capacity] forecast_horizon` (beyond it "not within horizon" could not tell met from
/// breached).
pub(crate) fn cross_check(
    ctx: &mut Ctx<'_>,
    sec: &Section<'_, '_>,
    service: &Service,
    agents: Option<&[String]>,
    capacity: Option<&CapacityConfig>,
) -> bool {
    let mut ok = true;
    if let (Some(agents), Some(DeValue::Array(items))) =
        (agents, sec.get("hosts").map(toml::Spanned::get_ref))
    {
        for (i, item) in items.iter().enumerate() {
            let DeValue::String(id) = item.get_ref() else {
                continue;
            };
            if !agents.iter().any(|a| a == id.as_ref()) {
                let p = format!("{}[{i}]", sec.key_path("hosts"));
                ctx.expected(item, &p, "the id of an [[agent]] of this file");
                ok = false;
            }
        }
    }
    let Some(cap) = capacity else {
        return ok;
    };
    let horizon_days = cap.forecast_horizon.as_secs() / 86_400;
    let Some(DeValue::Array(items)) = sec.get("capacity").map(toml::Spanned::get_ref) else {
        return ok;
    };
    for (i, obj) in service.capacity.iter().enumerate() {
        let CapacityRule::DaysToThreshold { min_days, .. } = obj.rule else {
            continue;
        };
        if u64::from(min_days) <= horizon_days {
            continue;
        }
        let Some(DeValue::Table(t)) = items.get(i).map(toml::Spanned::get_ref) else {
            continue;
        };
        if let Some(v) = t.get("min_days") {
            let p = format!("{}[{i}].min_days", sec.key_path("capacity"));
            let what = format!("at most the [capacity] forecast_horizon ({horizon_days} days)");
            ctx.expected(v, &p, &what);
            ok = false;
        }
    }
    ok
}
