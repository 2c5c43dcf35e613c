//! `attest-collector agents`: the rows of `GET /api/v1/agents` as a fixed-width table.
//!
//! Invariant: one line per agent plus a header; every column always present (`-` when
//! unknown), so the output can be read by eye and by `awk`.

use attest_config::wire::AgentInfo;
use jiff::Timestamp;

const HEADER: [&str; 10] = [
    "agent",
    "version",
    "last seen",
    "offset",
    "spool",
    "dropped",
    "checks",
    "labels",
    "key",
    "error",
];

/// The table; ages are relative to `now` ("12s ago").
pub fn render(rows: &[AgentInfo], now: Timestamp) -> String {
    let mut lines: Vec<[String; 10]> = vec![HEADER.map(str::to_string)];
    for r in rows {
        lines.push(row(r, now));
    }
    let mut widths = [0usize; 10];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 9 {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn row(r: &AgentInfo, now: Timestamp) -> [String; 10] {
    let dash = || "-".to_string();
    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    [
        r.id.clone(),
        r.version.clone().unwrap_or_else(dash),
        r.last_seen.map_or_else(dash, |t| ago(t, now)),
        r.clock_offset_ms.map_or_else(dash, |ms| format!("{ms}ms")),
        r.spool_depth.map_or_else(dash, |d| d.to_string()),
        r.spool_dropped_total.map_or_else(dash, |d| d.to_string()),
        if r.assigned_checks.is_empty() {
            dash()
        } else {
            r.assigned_checks.join(",")
        },
        if labels.is_empty() {
            dash()
        } else {
            labels.join(",")
        },
        key_cell(r),
        r.last_error.clone().unwrap_or_else(dash),
    ]
}

/// `SHA256:` and the first 16 hex digits of the key's fingerprint, and how it is trusted:
/// a `pinned` key is one to confirm with `[[agent]] public_key`.
fn key_cell(r: &AgentInfo) -> String {
    match (&r.key, &r.key_trust) {
        (Some(k), Some(t)) => format!("{}… {t}", k.chars().take(7 + 16).collect::<String>()),
        (Some(k), None) => k.clone(),
        _ => "-".to_string(),
    }
}

fn ago(t: Timestamp, now: Timestamp) -> String {
    let s = now.duration_since(t).as_secs().max(0);
    match s {
        0..120 => format!("{s}s ago"),
        120..7200 => format!("{}m ago", s / 60),
        7200..172_800 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_aligned_line_per_agent_with_dashes_for_unknowns() {
        let now: Timestamp = "2026-11-01T12:00:00Z".parse().expect("ts");
        let rows = vec![
            AgentInfo {
                id: "web-01".into(),
                labels: [("role".to_string(), "web".to_string())].into(),
                version: Some("0.1.0".into()),
                last_seen: Some("2026-11-01T11:59:48Z".parse().expect("ts")),
                clock_offset_ms: Some(-3),
                assigned_checks: vec!["shop-home".into(), "dns".into()],
                fetched_revision: Some("00ff".into()),
                spool_depth: Some(0),
                spool_dropped_total: Some(0),
                last_error: None,
                key: Some(format!("SHA256:{}", "ab".repeat(32))),
                key_trust: Some("pinned".into()),
            },
            AgentInfo {
                id: "db-1".into(),
                labels: Default::default(),
                version: None,
                last_seen: None,
                clock_offset_ms: None,
                assigned_checks: vec![],
                fetched_revision: None,
                spool_depth: None,
                spool_dropped_total: None,
                last_error: Some("check id x defined both".into()),
                key: None,
                key_trust: None,
            },
        ];
        assert_eq!(
            render(&rows, now),
            "agent   version  last seen  offset  spool  dropped  checks         labels    key                              error\n\
             web-01  0.1.0    12s ago    -3ms    0      0        shop-home,dns  role=web  SHA256:abababababababab… pinned  -\n\
             db-1    -        -          -       -      -        -              -         -                                check id x defined both\n"
        );
    }
}
