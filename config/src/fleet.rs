//! Which central checks each agent runs, computed from a validated collector
//! configuration: pure functions shared by the collector (serving assignments,
//! `check-config`) and tests.
//!
//! Invariants:
//! - An agent gets the union of every `[[assign]]` that names it or whose `match` labels
//!   its labels contain; each check once, in the order the `[[check]]` tables appear.
//! - The revision depends only on the assigned checks' text, so an unchanged assignment
//!   keeps its ETag across collector restarts and reloads.

use std::collections::BTreeSet;

use crate::model::{AgentAuth, AssignRule, CentralCheck, CollectorConfig};
use crate::wire::{ASSIGNMENT_VERSION, Assignment};

/// True when `rule` selects `agent`.
pub fn selects(rule: &AssignRule, agent: &AgentAuth) -> bool {
    let by_id = rule.agents.contains(&agent.id);
    let by_labels = !rule.labels.is_empty()
        && rule
            .labels
            .iter()
            .all(|(k, v)| agent.labels.get(k) == Some(v));
    by_id || by_labels
}

/// The central checks assigned to `agent_id`, in definition order (empty for an unknown id).
pub fn assigned<'c>(cfg: &'c CollectorConfig, agent_id: &str) -> Vec<&'c CentralCheck> {
    let Some(agent) = cfg.agents.iter().find(|a| a.id == agent_id) else {
        return Vec::new();
    };
    let wanted: BTreeSet<&str> = cfg
        .assignments
        .iter()
        .filter(|r| selects(r, agent))
        .flat_map(|r| r.checks.iter().map(String::as_str))
        .collect();
    cfg.checks
        .iter()
        .filter(|c| wanted.contains(c.check.id.as_str()))
        .collect()
}

/// The wire form of an agent's assignment.
pub fn assignment(cfg: &CollectorConfig, agent_id: &str) -> Assignment {
    let checks = assigned(cfg, agent_id);
    let text: String = checks
        .iter()
        .map(|c| c.source.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Assignment {
        version: ASSIGNMENT_VERSION,
        agent: agent_id.to_string(),
        revision: revision(&text),
        check_ids: checks.iter().map(|c| c.check.id.clone()).collect(),
        checks: text,
    }
}

/// FNV-1a (64 bit) of the text, as 16 hex digits: stable across builds and platforms.
pub fn revision(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What `check-config` warns about: legal, but probably not what the operator meant.
/// Services may also name checks from agents' own files, which the collector cannot see,
/// so these are warnings, not errors.
pub fn warnings(cfg: &CollectorConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (i, rule) in cfg.assignments.iter().enumerate() {
        if !cfg.agents.iter().any(|a| selects(rule, a)) {
            out.push(format!(
                "assign[{i}]: matches no [[agent]]; its checks run nowhere"
            ));
        }
    }
    let assigned: BTreeSet<&str> = cfg
        .agents
        .iter()
        .flat_map(|a| assigned(cfg, &a.id))
        .map(|c| c.check.id.as_str())
        .collect();
    for c in &cfg.checks {
        if !assigned.contains(c.check.id.as_str()) {
            out.push(format!(
                "check {:?}: defined centrally but assigned to no agent",
                c.check.id
            ));
        }
    }
    if cfg.checks.is_empty() {
        return out;
    }
    for s in &cfg.services {
        for id in &s.checks {
            if !cfg.checks.iter().any(|c| c.check.id == *id) {
                out.push(format!(
                    "service {:?}: check {id:?} is not a central [[check]]; it must come from an agent's own file",
                    s.name
                ));
            } else if !assigned.contains(id.as_str()) {
                out.push(format!(
                    "service {:?}: check {id:?} is assigned to no agent; the service will have no data",
                    s.name
                ));
            }
        }
    }
    out
}
