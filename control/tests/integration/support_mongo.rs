//! The MongoDB server of the MongoDB tests, from the environment: `RUSTCI_TEST_MONGODB_URI`
//! names it (a `mongodb://` URI: SecantusDB in CI, or a real `mongod`); without it a test
//! prints a visible `SKIPPED: ...` line on stderr and passes, unless
//! `RUSTCI_REQUIRE_MONGODB=1` (CI) makes that a failure. Each test works in a database of
//! its own ([`mongo_test_database`]) and drops it at the end.
//!
//! Shared by the control crate's tests and the workspace's `tests/` crate (included there
//! by path, as `support_redis.rs` is), so the rule lives in one place and no crate
//! depends on a test helper.

/// The environment variable naming the MongoDB server of the MongoDB tests.
pub const MONGO_ENV: &str = "RUSTCI_TEST_MONGODB_URI";

/// Set (CI sets it) to make a missing MongoDB server a failure instead of a skip.
pub const MONGO_REQUIRE_ENV: &str = "RUSTCI_REQUIRE_MONGODB";

/// The test server's URI, or `None` after printing the visible skip line; with
/// `RUSTCI_REQUIRE_MONGODB=1` a missing URI fails the test instead.
pub fn mongo_uri_or_skip(test: &str) -> Option<String> {
    let Ok(uri) = std::env::var(MONGO_ENV) else {
        skip_mongo(test, &format!("{MONGO_ENV} not set"));
        return None;
    };
    Some(uri)
}

/// Prints the visible `SKIPPED: {test}: {why}` line, or fails the test instead when
/// `RUSTCI_REQUIRE_MONGODB=1`.
pub fn skip_mongo(test: &str, why: &str) {
    use std::io::Write;
    if std::env::var_os(MONGO_REQUIRE_ENV).is_some_and(|v| v != "0") {
        panic!("{test}: {why}, and {MONGO_REQUIRE_ENV} is set");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// Every test that uses the MongoDB server holds this shared; a test that ends every
/// session on the server (`killAllSessions`: the take-over test of the store, and every
/// `rustci serve` that starts or becomes leader on MongoDB) holds it alone.
pub static MONGO_SESSIONS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A database name no other test run uses.
pub fn mongo_test_database() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "rustci_test_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// `uri` with its path (the database) set to `db`, keeping hosts and options. A path it
/// had (the authentication database, for MongoDB) becomes `authSource` unless set.
pub fn uri_with_database(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("a mongodb:// URI");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (path, options) = tail.split_at(tail.find('?').unwrap_or(tail.len()));
    let old_db = path.trim_start_matches('/');
    let mut options = options.to_string();
    if !old_db.is_empty() && !options.to_ascii_lowercase().contains("authsource=") {
        options.push(if options.is_empty() { '?' } else { '&' });
        options.push_str("authSource=");
        options.push_str(old_db);
    }
    format!("{scheme}://{authority}/{db}{options}")
}
