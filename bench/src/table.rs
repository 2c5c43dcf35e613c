//! The results file and the final table. Each measurement prints `label.key=value`
//! lines that `bench/run` appends to one file; `table` reads it back and prints every
//! figure beside its reference, the ratio, the target and whether it is met.
//!
//! Invariant: a missing or failed measurement shows as `n/a` with a reason, never as a
//! number; a figure measured while probes failed carries the failure count, because a
//! failing probe is cheaper than a working one and would flatter the engine.

use std::collections::BTreeMap;
use std::fmt::Write as _;

const MIB: f64 = 1024.0 * 1024.0;

/// Parsed `label.key=value` lines; later lines win, unparsable lines are skipped.
#[derive(Debug, Default)]
pub struct Results(BTreeMap<String, String>);

impl Results {
    pub fn parse(text: &str) -> Results {
        let map = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Results(map)
    }

    fn num(&self, key: &str) -> Option<f64> {
        self.0
            .get(key)
            .and_then(|v| v.parse().ok())
            .filter(|v: &f64| v.is_finite())
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Seconds of CPU per `per` operations of a labelled run.
    fn cpu_per(&self, label: &str, per: f64) -> Option<f64> {
        let cpu = self.num(&format!("{label}.cpu_seconds"))?;
        let n = self.num(&format!("{label}.ok"))? + self.num(&format!("{label}.failed"))?;
        (n > 0.0).then(|| cpu / n * per)
    }

    /// Labels of the form `{prefix}{n}` that carry a `.checks` line, in numeric order of `n`.
    fn numbered(&self, prefix: &str) -> Vec<(u64, String)> {
        let mut out: Vec<(u64, String)> = self
            .0
            .keys()
            .filter_map(|k| k.strip_suffix(".checks"))
            .filter_map(|label| {
                let n = label.strip_prefix(prefix)?.parse().ok()?;
                Some((n, label.to_string()))
            })
            .collect();
        out.sort();
        out
    }

    /// Failures of a labelled run, as a note when there were any.
    fn failures(&self, label: &str) -> Option<String> {
        let failed = self.num(&format!("{label}.failed"))?;
        (failed > 0.0).then(|| format!("{label}: {failed} failed"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// Shown for explanation; no target.
    Info,
    RatioAtMost(f64),
    RatioAtLeast(f64),
    ValueAtMost(f64),
}

impl Target {
    fn describe(self, unit: &str) -> String {
        match self {
            Target::Info => "(explains rate)".into(),
            Target::RatioAtMost(r) => format!("ratio <= {r}"),
            Target::RatioAtLeast(r) => format!("ratio >= {r}"),
            Target::ValueAtMost(v) => format!("<= {v} {unit}"),
        }
    }

    fn met(self, value: Option<f64>, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::Info => None,
            Target::RatioAtMost(r) => ratio.map(|x| x <= r),
            Target::RatioAtLeast(r) => ratio.map(|x| x >= r),
            Target::ValueAtMost(v) => value.map(|x| x <= v),
        }
    }
}

struct Row {
    figure: String,
    unit: &'static str,
    attest: Option<f64>,
    reference: Option<f64>,
    reference_text: Option<String>,
    target: Target,
    notes: Vec<String>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.attest, self.reference) {
            (Some(a), Some(r)) if r > 0.0 => Some(a / r),
            _ => None,
        }
    }
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.4}"),
        None => "n/a".into(),
    }
}

fn cpu_row(r: &Results, kind: &str) -> Row {
    let engine = format!("{kind}_engine");
    let blackbox = format!("{kind}_blackbox");
    Row {
        figure: format!("CPU s per 1000 {} probes", kind.to_uppercase()),
        unit: "s",
        attest: r.cpu_per(&engine, 1000.0),
        reference: r.cpu_per(&blackbox, 1000.0),
        reference_text: None,
        target: Target::RatioAtMost(0.5),
        notes: [r.failures(&engine), r.failures(&blackbox)]
            .into_iter()
            .flatten()
            .collect(),
    }
}

fn rate_row(r: &Results) -> Row {
    let c = r.text("engine_rate.concurrency").unwrap_or("?");
    let per_second = |label: &str| {
        let ok = r.num(&format!("{label}.ok"))?;
        let wall = r.num(&format!("{label}.wall_seconds"))?;
        (wall > 0.0).then(|| ok / wall)
    };
    let mut notes: Vec<String> = r.failures("engine_rate").into_iter().collect();
    if let Some(n) = r.text("engine_rate.rounds") {
        notes.push(format!("median of {n} alternating rounds per side"));
    }
    if let Some(e) = r.num("wrk.errors").filter(|e| *e > 0.0) {
        notes.push(format!("wrk: {e} errors/non-2xx"));
    }
    Row {
        figure: format!("HTTP probes/s, concurrency {c}"),
        unit: "/s",
        attest: per_second("engine_rate"),
        reference: r.num("wrk.per_second"),
        reference_text: None,
        target: Target::RatioAtLeast(0.7),
        notes,
    }
}

/// Client CPU per request at the highest rate: on a shared machine the rate depends on
/// the neighbours, this does not, and it is what bounds the rate when nginx and the
/// client share the cores.
fn client_cpu_row(r: &Results) -> Row {
    let engine = r.cpu_per("engine_rate", 1e6);
    let wrk = match (r.num("wrk.cpu_seconds"), r.num("wrk.requests")) {
        (Some(cpu), Some(n)) if n > 0.0 => Some(cpu / n * 1e6),
        _ => None,
    };
    Row {
        figure: "client CPU us per HTTP request at max".into(),
        unit: "us",
        attest: engine,
        reference: wrk,
        reference_text: None,
        target: Target::Info,
        notes: vec![],
    }
}

fn rss_row(r: &Results) -> Row {
    let mib = |k: &str| r.num(k).map(|b| b / MIB);
    let reference_text = format!(
        "bb {} / node {} idle",
        fmt_num(mib("blackbox.idle_rss_bytes")),
        fmt_num(mib("node_exporter.idle_rss_bytes"))
    );
    let mut notes: Vec<String> = r
        .text("agent.note")
        .map(str::to_string)
        .into_iter()
        .collect();
    if let Some(hwm) = mib("agent.hwm_bytes") {
        notes.push(format!("agent peak {hwm:.2} MiB"));
    }
    Row {
        figure: "Agent RSS MiB, 100 HTTP @10s + host".into(),
        unit: "MiB",
        attest: mib("agent.rss_bytes"),
        reference: None,
        reference_text: Some(reference_text),
        target: Target::ValueAtMost(10.0),
        notes,
    }
}

/// The whole agent (`bench/agent-rss`) at `n` checks every 10 s: median `VmRSS` after the
/// warm-up beside blackbox_exporter's RSS while it answers the same probe rate.
fn agent_rss_row(r: &Results, n: u64, label: &str) -> Row {
    let mib = |k: &str| r.num(k).map(|b| b / MIB);
    let bb = format!("bb_load{n}");
    let mut notes = Vec::new();
    if let (Some(max), Some(hwm)) = (
        mib(&format!("{label}.rss_max_bytes")),
        mib(&format!("{label}.hwm_bytes")),
    ) {
        notes.push(format!(
            "max sample {max:.2} MiB, peak since start {hwm:.2} MiB"
        ));
    }
    if let Some(t) = r.num(&format!("{label}.threads")) {
        notes.push(format!("{t} threads"));
    }
    if let (Some(anon), Some(file)) = (
        mib(&format!("{label}.rss_anon_bytes")),
        mib(&format!("{label}.rss_file_bytes")),
    ) {
        notes.push(format!(
            "last sample: {anon:.2} MiB anonymous (heap, stacks), {file:.2} MiB file pages (binary, libc)"
        ));
    }
    if let Some(note) = r.text(&format!("{label}.note")) {
        notes.push(note.to_string());
    }
    notes.extend(r.failures(&bb));
    Row {
        figure: format!("Agent RSS MiB, {n} checks @10s"),
        unit: "MiB",
        attest: mib(&format!("{label}.rss_bytes")),
        reference: mib(&format!("{bb}.rss_bytes")),
        reference_text: None,
        target: Target::ValueAtMost(10.0),
        notes,
    }
}

/// Agent CPU per probe in the same window (all of it: probes, spool, upload), beside
/// blackbox_exporter's CPU per `/probe` at the same rate.
fn agent_cpu_row(r: &Results, n: u64, label: &str) -> Row {
    let attest = match (
        r.num(&format!("{label}.cpu_seconds")),
        r.num(&format!("{label}.measured")),
    ) {
        (Some(cpu), Some(m)) if m > 0.0 => Some(cpu / m * 1000.0),
        _ => None,
    };
    Row {
        figure: format!("Agent CPU ms per probe, {n} checks"),
        unit: "ms",
        attest,
        reference: r.cpu_per(&format!("bb_load{n}"), 1000.0),
        reference_text: None,
        target: Target::Info,
        notes: vec![],
    }
}

fn host_row(r: &Results) -> Row {
    Row {
        figure: "CPU ms per host collection / scrape".into(),
        unit: "ms",
        attest: r.cpu_per("host_engine", 1000.0),
        reference: r.cpu_per("node_scrape", 1000.0),
        reference_text: None,
        target: Target::RatioAtMost(0.25),
        notes: [r.failures("host_engine"), r.failures("node_scrape")]
            .into_iter()
            .flatten()
            .collect(),
    }
}

fn size_row(r: &Results) -> Row {
    Row {
        figure: "attest-agent stripped binary MiB".into(),
        unit: "MiB",
        attest: r.num("agent.binary_bytes").map(|b| b / MIB),
        reference: None,
        reference_text: Some("-".into()),
        target: Target::ValueAtMost(8.0),
        notes: vec![],
    }
}

/// The whole table as text, one figure per line, notes below.
pub fn render(r: &Results) -> String {
    let mut rows = Vec::new();
    // `bench/agent-rss` alone prints only its own rows and the binary size.
    let probe_bench = [
        "http_",
        "tcp_",
        "engine_rate.",
        "host_engine.",
        "agent.rss_bytes",
    ]
    .iter()
    .any(|p| r.0.keys().any(|k| k.starts_with(p)));
    if probe_bench {
        rows.extend([
            cpu_row(r, "http"),
            cpu_row(r, "tcp"),
            rate_row(r),
            client_cpu_row(r),
            rss_row(r),
            host_row(r),
        ]);
    }
    for (n, label) in r.numbered("agent_rss") {
        rows.push(agent_rss_row(r, n, &label));
        rows.push(agent_cpu_row(r, n, &label));
    }
    rows.push(size_row(r));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {:<38} | {:>9} | {:>24} | {:>7} | {:<16} | {:<6} |",
        "figure", "attest", "reference", "ratio", "target", "met"
    );
    let _ = writeln!(
        out,
        "|{:-<40}|{:->11}|{:->26}|{:->9}|{:-<18}|{:-<8}|",
        "", "", "", "", "", ""
    );
    let mut notes = Vec::new();
    for row in &rows {
        let ratio = row.ratio();
        let met = match row.target.met(row.attest, ratio) {
            Some(true) => "yes",
            Some(false) => "NO",
            None if row.target == Target::Info => "-",
            None => "n/a",
        };
        let reference = row
            .reference_text
            .clone()
            .unwrap_or_else(|| fmt_num(row.reference));
        let _ = writeln!(
            out,
            "| {:<38} | {:>9} | {:>24} | {:>7} | {:<16} | {:<6} |",
            row.figure,
            fmt_num(row.attest),
            reference,
            ratio.map_or("-".into(), |x| format!("{x:.3}")),
            row.target.describe(row.unit),
            met
        );
        notes.extend(row.notes.iter().map(|n| format!("{}: {n}", row.figure)));
    }
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
http_engine.cpu_seconds=0.2
http_engine.ok=1000
http_engine.failed=0
http_blackbox.cpu_seconds=1.0
http_blackbox.ok=990
http_blackbox.failed=10
engine_rate.concurrency=32
engine_rate.ok=10000
engine_rate.failed=0
engine_rate.wall_seconds=5
wrk.per_second=2500
wrk.requests=12500
wrk.cpu_seconds=0.5
engine_rate.cpu_seconds=1.0
agent.rss_bytes=20971520
agent.binary_bytes=4194304
garbage line
";

    #[test]
    fn ratios_and_verdicts_follow_the_targets() {
        let text = render(&Results::parse(SAMPLE));
        let line = |start: &str| {
            text.lines()
                .find(|l| l.contains(start))
                .unwrap_or_else(|| panic!("no row {start} in\n{text}"))
                .to_string()
        };
        let http = line("1000 HTTP");
        assert!(
            http.contains("0.2000") && http.contains("0.200") && http.contains("yes"),
            "{http}"
        );
        let rate = line("probes/s");
        assert!(
            rate.contains("2000") && rate.contains("0.800") && rate.contains("yes"),
            "{rate}"
        );
        assert!(line("RSS").contains("NO"), "20 MiB misses 10 MiB");
        assert!(line("binary").contains("4.00") && line("binary").contains("yes"));
        assert!(line("1000 TCP").contains("n/a"), "missing runs are n/a");
        let client = line("client CPU");
        assert!(
            client.contains("100") && client.contains("40.00") && client.contains("2.500"),
            "{client}"
        );
        assert!(text.contains("http_blackbox: 10 failed"), "{text}");
    }

    #[test]
    fn agent_memory_runs_get_a_row_per_check_count() {
        let text = render(&Results::parse(
            "agent_rss1000.checks=1000\nagent_rss1000.rss_bytes=8388608\n\
             agent_rss1000.cpu_seconds=2\nagent_rss1000.measured=4000\n\
             bb_load1000.rss_bytes=33554432\nbb_load1000.cpu_seconds=4\n\
             bb_load1000.ok=4000\nbb_load1000.failed=0\n\
             agent_rss100.checks=100\nagent_rss100.rss_bytes=12582912\n\
             agent.binary_bytes=4194304\n",
        ));
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("checks")).collect();
        assert_eq!(rows.len(), 4, "{text}");
        assert!(
            rows[0].contains("100 checks") && rows[0].contains("NO"),
            "{text}"
        );
        let big = rows[2];
        assert!(
            big.contains("1000 checks") && big.contains("8.00") && big.contains("32.00"),
            "{big}"
        );
        assert!(big.contains("0.250") && big.contains("yes"), "{big}");
        assert!(
            rows[3].contains("0.5000") && rows[3].contains("1.00"),
            "{}",
            rows[3]
        );
        assert!(
            !text.contains("HTTP probes/s"),
            "probe rows only with probe results"
        );
    }

    #[test]
    fn non_numbers_and_zero_counts_are_not_figures() {
        let r = Results::parse(
            "x.cpu_seconds=abc\nx.ok=1\nx.failed=0\ny.cpu_seconds=1\ny.ok=0\ny.failed=0",
        );
        assert_eq!(r.cpu_per("x", 1.0), None);
        assert_eq!(r.cpu_per("y", 1.0), None);
    }
}
