//! Central check assignment: who gets which checks, the text an agent receives parses back
//! to the very checks the collector validated, revisions move only when checks change, and
//! `check-config`'s warnings.

use attest_config::fleet::{assignment, warnings};
use attest_config::{parse_checks, parse_collector};

const FLEET: &str = r#"
[[agent]]
id = "web-01"
token = "t-web-01"
labels = { site = "ams", role = "web" }

[[agent]]
id = "web-02"
token = "t-web-02"
labels = { site = "fra", role = "web" }

[[agent]]
id = "db/01"
token = "t-db-01"
labels = { site = "ams", role = "db" }

[[check]]
id = "shop-home"
kind = "http"
url = "https://shop.example/"
interval = "15s"
headers = { "x-probe" = "attest" }
tls = { ca_file = "/etc/attest/ca.pem", server_name = "shop.example" }

[[check]]
id = "ams-dns"
kind = "dns"
server = "192.0.2.53"
name = "shop.example"

[[check]]
id = "db-port"
kind = "tcp"
address = "127.0.0.1:5432"

[[assign]]
match = { role = "web" }
checks = ["shop-home"]

[[assign]]
match = { site = "ams" }
agents = ["web-02"]
checks = ["ams-dns"]

[[service]]
name = "shop"
checks = ["shop-home", "db-port", "local-only"]
target = "99.9%"
"#;

#[test]
fn agents_get_the_union_of_their_rules_in_definition_order() {
    let cfg = parse_collector("collector.toml", FLEET).expect("valid");
    let ids = |agent: &str| assignment(&cfg, agent).check_ids;
    assert_eq!(ids("web-01"), ["shop-home", "ams-dns"]);
    assert_eq!(ids("web-02"), ["shop-home", "ams-dns"]);
    assert_eq!(ids("db/01"), ["ams-dns"]);
    assert!(ids("nobody").is_empty());
}

#[test]
fn the_assignment_text_parses_back_to_the_same_checks() {
    let cfg = parse_collector("collector.toml", FLEET).expect("valid");
    let a = assignment(&cfg, "web-01");
    let checks = parse_checks("assignment", &a.checks).expect("agent accepts it");
    let central: Vec<_> = cfg.checks.iter().map(|c| c.check.clone()).collect();
    assert_eq!(checks, central[..2]);
}

#[test]
fn revision_changes_only_with_the_assigned_checks() {
    let cfg = parse_collector("collector.toml", FLEET).expect("valid");
    let before = assignment(&cfg, "db/01").revision;
    // Changing a check db/01 does not run leaves its revision alone...
    let other = FLEET.replace("interval = \"15s\"", "interval = \"20s\"");
    let cfg2 = parse_collector("collector.toml", &other).expect("valid");
    assert_eq!(assignment(&cfg2, "db/01").revision, before);
    assert_ne!(
        assignment(&cfg2, "web-01").revision,
        assignment(&cfg, "web-01").revision
    );
    // ...changing one it runs moves it.
    let mine = FLEET.replace(
        "name = \"shop.example\"\n\n[[check]]\nid = \"db-port\"",
        "name = \"www.shop.example\"\n\n[[check]]\nid = \"db-port\"",
    );
    let cfg3 = parse_collector("collector.toml", &mine).expect("valid");
    assert_ne!(assignment(&cfg3, "db/01").revision, before);
}

#[test]
fn warnings_name_unassigned_checks_and_services_without_data() {
    let mut src = FLEET.to_string();
    src.push_str("\n[[assign]]\nmatch = { role = \"mail\" }\nchecks = [\"ams-dns\"]\n");
    let cfg = parse_collector("collector.toml", &src).expect("valid");
    assert_eq!(
        warnings(&cfg),
        [
            "assign[2]: matches no [[agent]]; its checks run nowhere",
            "check \"db-port\": defined centrally but assigned to no agent",
            "service \"shop\": check \"db-port\" is assigned to no agent; the service will have no data",
            "service \"shop\": check \"local-only\" is not a central [[check]]; it must come from an agent's own file",
        ]
    );
}

#[test]
fn an_assignment_with_anything_but_checks_is_refused() {
    let err = parse_checks("assignment", "[agent]\nid = \"x\"\n").expect_err("not a check list");
    assert_eq!(
        err.to_string(),
        "assignment:1:2: error: unknown key \"agent\" in the file (expected one of: check)"
    );
}
