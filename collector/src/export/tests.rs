//! Each format's files against the required fields its specification documents (OpenSLO
//! v1 README, Sloth `prometheus/v1` and its validator, Pyrra's `ServiceLevelObjective`
//! type and webhook validation), read back with a YAML parser; object names; query escaping.

use serde_json::Value;

use super::{Format, Options, export, object_name, selector};

const TOML: &str = r#"
[[service]]
name = "web"
checks = ["web", "web-tls"]
target = "99.9%"
time_zone = "Europe/Berlin"

[[service]]
name = "Payments \"EU\" \\ API"
checks = ["pay"]
target = "99.95%"

[[service]]
name = "all-or-nothing"
checks = ["x"]
target = "100%"
"#;

fn config() -> attest_config::CollectorConfig {
    attest_config::parse_collector("collector.toml", TOML).expect("valid config")
}

/// Every document of a YAML stream, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{e}:\n{d}")))
        .collect()
}

fn files(format: Format) -> Vec<(String, Vec<Value>)> {
    export(&config(), format, None, &Options::default())
        .expect("export")
        .into_iter()
        .map(|f| (f.name, documents(&f.yaml)))
        .collect()
}

fn rfc1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{path} missing or not a string in {v}"))
}

#[test]
fn object_names_are_rfc1123_labels_and_distinct() {
    assert_eq!(object_name("web", ""), "web");
    assert_eq!(object_name("web", "-availability"), "web-availability");
    let mapped = object_name("Web Shop", "");
    assert!(
        mapped.starts_with("web-shop-") && rfc1123_label(&mapped),
        "{mapped}"
    );
    assert_ne!(object_name("Web Shop", ""), object_name("web-shop", ""));
    assert_ne!(object_name("Web Shop", ""), object_name("web shop", ""));
    let (long, sixty) = ("x".repeat(128), "a".repeat(60));
    for name in ["日本", "--", long.as_str(), "A.B_C", sixty.as_str()] {
        for suffix in ["", "-availability"] {
            let n = object_name(name, suffix);
            assert!(rfc1123_label(&n), "{name:?}{suffix} → {n:?}");
        }
    }
}

#[test]
fn queries_select_the_exact_service_name() {
    assert_eq!(
        selector("attest_slo_good_minutes", "a\"b\\c"),
        r#"attest_slo_good_minutes_total{service="a\"b\\c"}"#
    );
}

#[test]
fn openslo_has_the_fields_v1_requires() {
    let cfg = config();
    for ((file, docs), svc) in files(Format::OpenSlo).iter().zip(&cfg.services) {
        assert!(file.ends_with(".yaml"));
        let kinds: Vec<&str> = docs.iter().map(|d| str_at(d, "/kind")).collect();
        assert_eq!(kinds, ["Service", "SLI", "SLO"], "{file}");
        for d in docs {
            assert_eq!(str_at(d, "/apiVersion"), "openslo/v1");
            assert!(rfc1123_label(str_at(d, "/metadata/name")), "{d}");
            assert_eq!(
                str_at(d, "/metadata/annotations/attest.dev~1service"),
                svc.name
            );
            assert!(str_at(d, "/spec/description").chars().count() <= 1_050);
        }
        let (service, sli, slo) = (&docs[0], &docs[1], &docs[2]);
        // SLI: a ratio of two counters, each a Prometheus query.
        assert_eq!(
            sli.pointer("/spec/ratioMetric/counter"),
            Some(&Value::Bool(true))
        );
        for part in ["good", "total"] {
            let src = format!("/spec/ratioMetric/{part}/metricSource");
            assert_eq!(str_at(sli, &format!("{src}/type")), "Prometheus");
            let q = str_at(sli, &format!("{src}/spec/query"));
            assert!(
                q.starts_with("attest_slo_") && q.contains("service="),
                "{q}"
            );
        }
        // SLO: service, indicatorRef, budgetingMethod, exactly one calendar window, objectives.
        assert_eq!(
            str_at(slo, "/spec/service"),
            str_at(service, "/metadata/name")
        );
        assert_eq!(
            str_at(slo, "/spec/indicatorRef"),
            str_at(sli, "/metadata/name")
        );
        assert!(
            ["Occurrences", "Timeslices", "RatioTimeslices"]
                .contains(&str_at(slo, "/spec/budgetingMethod"))
        );
        let windows = slo
            .pointer("/spec/timeWindow")
            .and_then(Value::as_array)
            .expect("timeWindow");
        assert_eq!(windows.len(), 1);
        let w = &windows[0];
        assert_eq!(str_at(w, "/duration"), "1M");
        assert_eq!(w.pointer("/isRolling"), Some(&Value::Bool(false)));
        let start = str_at(w, "/calendar/startTime");
        assert!(
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", start).is_ok(),
            "{start}"
        );
        assert_eq!(str_at(w, "/calendar/timeZone"), svc.time_zone);
        let objectives = slo
            .pointer("/spec/objectives")
            .and_then(Value::as_array)
            .expect("objectives");
        assert_eq!(objectives.len(), 1);
        let target = objectives[0]
            .pointer("/target")
            .and_then(Value::as_f64)
            .expect("target");
        assert!((0.0..1.0).contains(&target), "{target}");
        if svc.target.0 < 1_000_000 {
            assert_eq!(target, svc.target.as_ratio());
        }
    }
}

#[test]
fn sloth_has_the_fields_its_validator_requires() {
    let cfg = config();
    let name_ok = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 2
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
    };
    for ((_, docs), svc) in files(Format::Sloth).iter().zip(&cfg.services) {
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(str_at(d, "/version"), "prometheus/v1");
        assert!(name_ok(str_at(d, "/service")));
        let slos = d.pointer("/slos").and_then(Value::as_array).expect("slos");
        assert_eq!(slos.len(), 1);
        let slo = &slos[0];
        assert!(name_ok(str_at(slo, "/name")));
        let objective = slo
            .pointer("/objective")
            .and_then(Value::as_f64)
            .expect("objective");
        assert!(objective > 0.0 && objective <= 100.0);
        assert_eq!(objective, f64::from(svc.target.0) / 1e4);
        let (e, t) = (
            str_at(slo, "/sli/events/error_query"),
            str_at(slo, "/sli/events/total_query"),
        );
        assert!(e.contains("{{.window}}") && t.contains("{{.window}}"));
        assert_ne!(e, t);
        assert!(!str_at(slo, "/alerting/name").is_empty());
    }
}

#[test]
fn pyrra_has_the_fields_its_validation_requires() {
    let cfg = config();
    let selector_ok = |s: &str| {
        let (name, rest) = s.split_once('{').expect("a selector with matchers");
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && rest.ends_with('}')
    };
    for ((_, docs), svc) in files(Format::Pyrra).iter().zip(&cfg.services) {
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(str_at(d, "/apiVersion"), "pyrra.dev/v1alpha1");
        assert_eq!(str_at(d, "/kind"), "ServiceLevelObjective");
        assert!(rfc1123_label(str_at(d, "/metadata/name")));
        assert_eq!(str_at(d, "/metadata/namespace"), "monitoring");
        let target: f64 = str_at(d, "/spec/target")
            .parse()
            .expect("target is a number");
        assert!((1.0..=100.0).contains(&target), "{target}: 0-100, not 0-1");
        assert_eq!(target, f64::from(svc.target.0) / 1e4);
        assert_eq!(str_at(d, "/spec/window"), "30d");
        let (e, t) = (
            str_at(d, "/spec/indicator/ratio/errors/metric"),
            str_at(d, "/spec/indicator/ratio/total/metric"),
        );
        assert!(selector_ok(e) && selector_ok(t), "{e} / {t}");
        assert_ne!(e, t);
    }
}

#[test]
fn one_service_or_a_refusal() {
    let cfg = config();
    let one = export(&cfg, Format::Sloth, Some("web"), &Options::default()).expect("one");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].name, "web.yaml");
    let err = export(&cfg, Format::Sloth, Some("nope"), &Options::default()).expect_err("unknown");
    assert!(err.contains("no service named \"nope\""), "{err}");
    // The same configuration gives the same bytes.
    assert_eq!(
        one,
        export(&cfg, Format::Sloth, Some("web"), &Options::default()).expect("again")
    );
}
