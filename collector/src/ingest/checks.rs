//! Which check ids an agent may write: `[ingest] checks` ("any" or only the ids some
//! service lists) and `[ingest] max_checks_per_agent`.
//!
//! Invariants:
//! - An agent's set only grows, and only through [`CheckBook::admit`], which reserves the
//!   new ids of a batch under one lock: two batches racing cannot both slip past the cap.
//! - The sets start from what the store already holds (seeded at startup), so a restart
//!   does not reset the cap.
//! - Memory is bounded: at most `max_checks_per_agent` ids per configured agent.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use attest_config::wire::{Gap, Measurement};
use attest_config::{AcceptChecks, IngestLimits};

use super::Rejection;

pub(crate) struct CheckBook {
    /// Replaced by a reload: "known" checks follow the services of the running config.
    accept: RwLock<AcceptChecks>,
    cap: usize,
    by_agent: Mutex<HashMap<String, HashSet<String>>>,
}

impl CheckBook {
    pub(crate) fn set_accept(&self, accept: AcceptChecks) {
        *self
            .accept
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = accept;
    }

    pub(crate) fn new(
        limits: &IngestLimits,
        known: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut by_agent: HashMap<String, HashSet<String>> = HashMap::new();
        for (agent, check) in known {
            by_agent.entry(agent).or_default().insert(check);
        }
        CheckBook {
            accept: RwLock::new(limits.checks.clone()),
            cap: limits.max_checks_per_agent,
            by_agent: Mutex::new(by_agent),
        }
    }

    /// Refuses a batch naming a check id that is not accepted or that would take `agent`
    /// past the cap; otherwise records its new ids.
    pub(crate) fn admit(
        &self,
        agent: &str,
        measurements: &[Measurement],
        gaps: &[Gap],
    ) -> Result<(), Rejection> {
        // The field path is written only for a refusal (not once per measurement).
        let named = measurements
            .iter()
            .enumerate()
            .map(|(i, m)| (&m.check, "measurements", i))
            .chain(gaps.iter().enumerate().map(|(i, g)| (&g.check, "gaps", i)));
        let field = |list: &str, i: usize| format!("{list}[{i}].check");
        let mut map = self
            .by_agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let have = map.entry(agent.to_string()).or_default();
        let mut new: BTreeSet<&String> = BTreeSet::new();
        let accept = self
            .accept
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (check, list, i) in named {
            if !accept.accepts(check) {
                return Err(Rejection::new(
                    400,
                    format!(
                        "check {check:?} is not listed by any [[service]] and this collector accepts only known checks ([ingest] checks = \"known\")"
                    ),
                )
                .field(field(list, i)));
            }
            if !have.contains(check.as_str())
                && new.insert(check)
                && have.len() + new.len() > self.cap
            {
                return Err(Rejection::new(
                    400,
                    format!(
                        "check {check:?} would be agent {agent:?}'s check number {}; [ingest] max_checks_per_agent is {}",
                        have.len() + new.len(),
                        self.cap
                    ),
                )
                .field(field(list, i)));
            }
        }
        have.extend(new.into_iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(check: &str) -> Measurement {
        serde_json::from_value(
            serde_json::json!({"check": check, "ts": "2026-10-01T00:00:00Z", "ok": true}),
        )
        .unwrap()
    }

    fn limits(cap: usize, accept: AcceptChecks) -> IngestLimits {
        let mut l = attest_config::parse_collector("c.toml", "").unwrap().ingest;
        l.max_checks_per_agent = cap;
        l.checks = accept;
        l
    }

    #[test]
    fn cap_counts_stored_and_new_ids_per_agent() {
        let book = CheckBook::new(&limits(2, AcceptChecks::Any), [("a".into(), "c1".into())]);
        assert!(book.admit("a", &[m("c1"), m("c2"), m("c2")], &[]).is_ok());
        let e = book.admit("a", &[m("c1"), m("c3")], &[]).unwrap_err();
        assert_eq!(
            (e.status, e.field.as_deref()),
            (400, Some("measurements[1].check"))
        );
        assert!(
            book.admit("a", &[m("c2")], &[]).is_ok(),
            "known ids still pass"
        );
        assert!(
            book.admit("b", &[m("c3"), m("c4")], &[]).is_ok(),
            "caps are per agent"
        );
        let refused = book.admit("b", &[m("c5")], &[]);
        assert!(refused.is_err());
        assert!(
            book.admit("b", &[m("c3")], &[]).is_ok(),
            "a refused batch reserves nothing"
        );
    }

    #[test]
    fn known_accepts_only_service_checks() {
        let known = AcceptChecks::Known(["web".to_string()].into_iter().collect());
        let book = CheckBook::new(&limits(10, known), []);
        assert!(book.admit("a", &[m("web")], &[]).is_ok());
        let gap = Gap {
            check: "other".into(),
            from: "2026-10-01T00:00:00Z".parse().unwrap(),
            to: "2026-10-01T00:01:00Z".parse().unwrap(),
            count: 1,
        };
        let e = book.admit("a", &[m("web")], &[gap]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("gaps[0].check"));
    }
}
