use super::*;

fn header(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

fn auth(users: &[(&str, &str, u32)]) -> Arc<BasicAuth> {
    let users = users
        .iter()
        .map(|(u, p, cost)| (u.to_string(), bcrypt::hash(p, *cost).expect("hash")))
        .collect();
    Arc::new(BasicAuth::new(&users).expect("users"))
}

#[tokio::test]
async fn right_wrong_and_missing_credentials() {
    let a = auth(&[("alice", "s3cret", 4)]);
    assert_eq!(
        a.check(Some(&header("alice", "s3cret"))).await,
        Ok("alice".into())
    );
    assert_eq!(
        a.check(Some(&header("alice", "s3creT"))).await,
        Err(BasicRefusal::Wrong)
    );
    assert_eq!(
        a.check(Some(&header("bob", "s3cret"))).await,
        Err(BasicRefusal::Wrong)
    );
    assert_eq!(a.check(None).await, Err(BasicRefusal::Missing));
    assert_eq!(
        a.check(Some("Bearer abc")).await,
        Err(BasicRefusal::Missing)
    );
    assert_eq!(
        a.check(Some("Basic !!!")).await,
        Err(BasicRefusal::Malformed)
    );
    let no_colon = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice")
    );
    assert_eq!(a.check(Some(&no_colon)).await, Err(BasicRefusal::Malformed));
}

#[tokio::test]
async fn the_cost_of_each_stored_hash_is_honoured() {
    let a = auth(&[("fast", "pw-fast", 4), ("slow", "pw-slow", 10)]);
    for (user, pw) in [("fast", "pw-fast"), ("slow", "pw-slow")] {
        assert_eq!(a.check(Some(&header(user, pw))).await, Ok(user.into()));
        assert_eq!(
            a.check(Some(&header(user, "nope"))).await,
            Err(BasicRefusal::Wrong)
        );
    }
    // The cost is read from the stored hash: the same salt and digest labelled with another
    // cost is a different hash, and the password no longer matches it.
    let fast = a.users.get("fast").expect("fast").clone();
    let relabelled = fast.replacen("$04$", "$05$", 1);
    let b = Arc::new(
        BasicAuth::new(&BTreeMap::from([("fast".to_string(), relabelled)])).expect("users"),
    );
    assert_eq!(
        b.check(Some(&header("fast", "pw-fast"))).await,
        Err(BasicRefusal::Wrong)
    );
}

#[tokio::test]
async fn only_successes_are_cached() {
    let a = auth(&[("alice", "s3cret", 4)]);
    let right = Credentials::parse(Some(&header("alice", "s3cret"))).expect("parse");
    let wrong = Credentials::parse(Some(&header("alice", "other"))).expect("parse");
    assert!(!a.cached(&right));
    assert!(a.check(Some(&header("alice", "s3cret"))).await.is_ok());
    assert!(a.cached(&right));
    assert!(a.check(Some(&header("alice", "other"))).await.is_err());
    assert!(!a.cached(&wrong));
    assert_eq!(a.lock().len(), 1);
}

#[test]
fn long_passwords_are_refused_not_truncated() {
    let long = "x".repeat(80);
    let hash = bcrypt::hash(&long, 4).expect("hash");
    let users = BTreeMap::from([("u".to_string(), hash)]);
    let a = BasicAuth::new(&users).expect("users");
    let c = Credentials::parse(Some(&header("u", &long))).expect("parse");
    assert!(!a.verify(&c));
}

#[test]
fn debug_never_shows_the_password() {
    let c = Credentials::parse(Some(&header("alice", "s3cret"))).expect("parse");
    assert!(!format!("{c:?}").contains("s3cret"));
}
