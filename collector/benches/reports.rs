//! Benchmark of the monthly report renderers: every format for the fixture month
//! (`report::monthly::fixture`, Europe/Berlin October 2026, two agents per service) with
//! 100 and 1,000 services. Run optimised: `cargo bench -p attest-collector --bench reports`
//! (release). Optional arguments: service counts (default `100 1000`).
//!
//! What is measured: rendering from the assembled report (the engine's results are built
//! first, through the real engine, and timed separately as "engine"), including sealing;
//! the bundle is written to a temporary directory for 100 services; for 1,000 its minute
//! tables (1.4 MB each) are rendered and hashed but not written, to spare the disk. Targets from the issue: all formats ≤ 3 s for 100 services, ≤ 20 s for 1,000.
//! Not a test: nothing here fails on time; it prints the numbers.

use std::time::Instant;

use attest_collector::report::monthly::{self, Format, RenderOptions, Templates, fixture};

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![100, 1_000]
    } else {
        counts
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    for n in counts {
        let t = Instant::now();
        let (report, minutes) = fixture::sample(n);
        let engine = t.elapsed();
        println!("{n} services: engine (fixture rows + evaluate + detail) {engine:.2?}");
        let opts = RenderOptions {
            key: Some(&key),
            templates: Templates::default(),
            minutes: &minutes,
        };
        let mut total = std::time::Duration::ZERO;
        for f in [
            Format::Json,
            Format::Html,
            Format::Md,
            Format::Pdf,
            Format::Csv,
        ] {
            let t = Instant::now();
            let files = monthly::render(&report, f, &opts).expect("render");
            let took = t.elapsed();
            total += took;
            let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
            println!("  {:<6} {took:>10.2?}  {bytes:>12} bytes", f.name());
        }
        if n <= 100 {
            let dir = tempfile::tempdir().expect("tempdir");
            let t = Instant::now();
            let written = monthly::write_bundle(dir.path(), &report, &opts).expect("bundle");
            let took = t.elapsed();
            total += took;
            println!(
                "  bundle {took:>10.2?}  {written:>12} bytes (every format + minute tables, written to disk)"
            );
        } else {
            // 1.4 MB of minute table per service: rendered and hashed, not written (disk).
            let lean = RenderOptions {
                key: Some(&key),
                templates: Templates::default(),
                minutes: &[],
            };
            let t = Instant::now();
            let files = monthly::render(&report, Format::Bundle, &lean).expect("bundle");
            let mut bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
            for (_, m) in &minutes {
                let table = monthly::csv::minutes(m);
                bytes += table.len();
                std::hint::black_box(monthly::integrity::sha256_hex(table.as_bytes()));
            }
            let took = t.elapsed();
            total += took;
            println!(
                "  bundle {took:>10.2?}  {bytes:>12} bytes (every format + minute tables rendered and hashed, not written)"
            );
        }
        let target = if n <= 100 { 3.0 } else { 20.0 };
        println!(
            "  all formats {total:.2?} (target for {n}: {target} s, {:.0} % of it)",
            total.as_secs_f64() / target * 100.0
        );
    }
}
