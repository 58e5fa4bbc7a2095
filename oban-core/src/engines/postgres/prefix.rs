//! The schema prefix in statements: every statement of this folder is written with Oban's names
//! unqualified (`oban_jobs`), and [`qualify`] rewrites it once per prefix into one that names the
//! prefix's schema (`"tenant_a".oban_jobs`), cached for the life of the process.
//!
//! The default prefix, `public`, keeps statements as written: names resolve through the
//! connection's `search_path`, as they always have.
//!
//! Statements that compare Oban's names as data (`pg_indexes.tablename = 'oban_jobs'`) must not
//! go through [`qualify`]: the rewrite would change the literal too. They bind the schema name
//! instead (see `schema.rs`).

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use crate::notifier::Channel;
use crate::prefix::Prefix;

/// Oban's names in PostgreSQL: tables, the state type, the functions.
const NAMES: [&str; 13] = [
    "oban_jobs",
    "oban_peers",
    "oban_producers",
    "oban_leaders",
    "oban_job_state",
    "oban_fetch_available",
    "oban_count_estimate",
    "oban_rust_migrations",
    "oban_rust_queue_limits",
    "oban_rust_rate_buckets",
    "oban_rust_rate_totals",
    "oban_rust_partition",
    "oban_fetch_limited",
];

/// `statement` with Oban's names in `prefix`'s schema: unchanged for `public`, otherwise
/// rewritten once and cached, so a statement costs one map lookup after its first use.
pub(super) fn qualify(prefix: Prefix, statement: &'static str) -> &'static str {
    if prefix.is_public() {
        return statement;
    }
    // Keyed by the statement's address: statements are `'static`, so an address is never reused
    // for other text (a statement compiled twice is cached twice, which is harmless).
    type Key = (&'static str, usize, usize);
    static CACHE: LazyLock<RwLock<HashMap<Key, &'static str>>> = LazyLock::new(Default::default);
    let key = (prefix.name(), statement.as_ptr() as usize, statement.len());
    if let Some(qualified) = CACHE.read().expect("statement cache lock").get(&key) {
        return qualified;
    }
    let qualified: &'static str = Box::leak(rewrite(prefix.name(), statement).into_boxed_str());
    CACHE
        .write()
        .expect("statement cache lock")
        .entry(key)
        .or_insert(qualified)
}

/// `sql` with every one of Oban's [`NAMES`] that stands as a whole word and is not already
/// qualified (preceded by `.`) or quoted, prefixed by `"schema".`.
fn rewrite(schema: &str, sql: &str) -> String {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 64);
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if !is_word(bytes[at]) {
            at += 1;
            continue;
        }
        let start = at;
        while at < bytes.len() && is_word(bytes[at]) {
            at += 1;
        }
        let word = &sql[start..at];
        let before = start.checked_sub(1).map(|i| bytes[i]);
        if NAMES.contains(&word) && !matches!(before, Some(b'.' | b'"' | b'$')) {
            out.push_str(&sql[copied..start]);
            out.push('"');
            out.push_str(schema);
            out.push_str("\".");
            out.push_str(word);
            copied = at;
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// The notification channel of `channel` for `prefix`: `{prefix}.oban_{name}`, Elixir Oban's
/// form (the prefix unquoted).
pub(super) fn channel_name(prefix: Prefix, channel: Channel) -> String {
    format!("{}.{}", prefix.name(), channel.suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_statements_are_unchanged() {
        let sql = "SELECT * FROM oban_jobs";
        assert!(std::ptr::eq(qualify(Prefix::PUBLIC, sql), sql));
    }

    #[test]
    fn whole_names_are_qualified_and_nothing_else() {
        assert_eq!(
            rewrite(
                "t",
                "UPDATE oban_jobs j SET state = 'x'::oban_job_state FROM oban_fetch_available($1) \
                 WHERE oban_peers.node = 1; CREATE INDEX oban_jobs_fetch_index ON oban_jobs (id); \
                 x.oban_jobs; \"oban_jobs\"; my_oban_jobs; oban_jobs2"
            ),
            "UPDATE \"t\".oban_jobs j SET state = 'x'::\"t\".oban_job_state FROM \
             \"t\".oban_fetch_available($1) WHERE \"t\".oban_peers.node = 1; CREATE INDEX \
             oban_jobs_fetch_index ON \"t\".oban_jobs (id); x.oban_jobs; \"oban_jobs\"; \
             my_oban_jobs; oban_jobs2"
        );
        assert_eq!(
            rewrite("t", "oban_rust_migrations,oban_producers"),
            "\"t\".oban_rust_migrations,\"t\".oban_producers"
        );
    }

    #[test]
    fn qualified_statements_are_cached() {
        let prefix = Prefix::new("cache_test").unwrap();
        let sql = "SELECT 1 FROM oban_jobs";
        let first = qualify(prefix, sql);
        assert_eq!(first, "SELECT 1 FROM \"cache_test\".oban_jobs");
        assert!(std::ptr::eq(first, qualify(prefix, sql)));
    }

    #[test]
    fn channels_carry_the_prefix() {
        let prefix = Prefix::new("tenant_a").unwrap();
        assert_eq!(
            channel_name(prefix, Channel::Signal),
            "tenant_a.oban_signal"
        );
        assert_eq!(
            channel_name(Prefix::PUBLIC, Channel::Insert),
            "public.oban_insert"
        );
    }
}
