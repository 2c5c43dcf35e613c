//! A fresh PostgreSQL database for an end-to-end test, dropped afterwards: the collector's
//! own test database helper (`attest_collector::store::postgres::test_db`, feature
//! `test-support`), under the name the end-to-end tests use.

pub use attest_collector::store::postgres::test_db::TestDb as PgDb;
