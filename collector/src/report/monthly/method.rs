//! The method section of every monthly report. Each item quotes the formulas of
//! `docs/sla.md` verbatim (a test checks every `formula` below appears there), so the report
//! and the user documentation cannot drift apart.

use super::model::MethodItem;

/// (title, explanation, formulas quoted from docs/sla.md).
pub const ITEMS: &[(&str, &str, &[&str])] = &[
    (
        "Period and minutes",
        "The period is the calendar month in the service's IANA time zone, from local midnight of the 1st to local midnight of the 1st of the next month (a DST month has 743 or 745 hours). Time is cut into UTC minutes; a minute is judged by its start instant.",
        &[],
    ),
    (
        "Eligibility",
        "A minute is eligible when it is in the period, in service hours (local wall-clock time), not on a holiday, outside every maintenance window (overlapping windows are a union), and after the service and its checks existed.",
        &[],
    ),
    (
        "Quorum",
        "Per agent and minute the verdict is fail if any of its probes failed. With R agents not silent, F of them failed: R = 0 or R < min_reporters ⇒ unknown; otherwise `any`: bad ⇔ F ≥ 1; `majority` (default): bad ⇔ 2F > R; `all`: bad ⇔ F = R; `at_least N`: bad ⇔ F ≥ N; else good. Measurements an agent reports as dropped (gaps) make its ok minutes silent; a recorded failure stays.",
        &["`majority` (default): bad ⇔ 2F > R"],
    ),
    (
        "Availability and unknown time",
        "Each eligible minute is good, bad or unknown; known = good + bad. Availability = good / known, not determinable (n/a) when nothing is known. Coverage = known / eligible. The bounds show unknown time counted as bad (pessimistic, good / eligible) and as good (optimistic, (good + unknown) / eligible). Below min_coverage the verdict is not determinable.",
        &[
            "`good / known`",
            "`known / eligible`",
            "`(good + unknown) / eligible`",
        ],
    ),
    (
        "Verdict and rounding",
        "Compliance is decided on integers: met ⇔ bad × 10⁶ ≤ (10⁶ − target_ppm) × known. Percentages shown beside a target are rounded down, so a breach never shows as a pass (99.8999 % is shown as 99.899 %, not 99.900 %).",
        &["`bad × 10⁶ ≤ (10⁶ − target_ppm) × known`"],
    ),
    (
        "Error budget",
        "Allowed downtime = (1 − target) × known minutes; budget left = allowed − bad (negative once exhausted).",
        &["`(1 − target) × known` minutes", "`allowed − bad`"],
    ),
    (
        "Incidents, MTTR, MTBF, MTBSI",
        "An incident is a maximal run of bad minutes; only a good minute ends it, unknown or ineligible minutes inside neither end it nor count as downtime. Incidents are clipped to the period. MTTR = counted downtime / incidents; MTBF = good minutes / incidents; MTBSI = known minutes / incidents (\"MTBF\" has several meanings; this is the one used here).",
        &["`MTTR = counted downtime / incidents`, `MTBF = good minutes / incidents`"],
    ),
    (
        "Latency",
        "The latency objective is the fraction of probes in eligible minutes whose exact duration is within the threshold; a failed probe never meets it. Percentiles come from merged HDR histograms.",
        &["`objective_ratio = probes_within / probes`"],
    ),
    (
        "Daily figures",
        "Daily availability uses the same minutes, cut at local midnight of the service's zone: the days add up to the month.",
        &[],
    ),
];

pub fn items() -> Vec<MethodItem> {
    ITEMS
        .iter()
        .map(|(t, x, _)| MethodItem {
            title: (*t).to_string(),
            text: (*x).to_string(),
        })
        .collect()
}
