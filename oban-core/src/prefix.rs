//! [`Prefix`]: the PostgreSQL schema an Oban instance lives in, as Elixir's and Python's `prefix`
//! option. Several instances share one database, each in its own schema, isolated from the
//! others: their tables, their fetch function and their notification channels.
//!
//! A `Prefix` holds only a validated name (see [`Prefix::new`]), so the name can be quoted into
//! statements without ever carrying user text that is not an identifier.

use std::collections::HashSet;
use std::fmt;
use std::sync::{LazyLock, Mutex};

use crate::error::{Error, Result};

/// The schema an Oban instance lives in: `public` by default.
///
/// The default leaves every table name unqualified, so a node without a prefix resolves them
/// through the connection's `search_path` exactly as it always has (which, with PostgreSQL's
/// default `search_path`, is the `public` schema). Any other prefix qualifies every table, type,
/// function and index with the quoted schema (`"tenant_a".oban_jobs`) and names the
/// notification channels `tenant_a.oban_insert`, `tenant_a.oban_signal` and
/// `tenant_a.oban_leader`, as Elixir Oban does.
///
/// ```
/// use oban_core::Prefix;
///
/// let tenant = Prefix::new("tenant_a")?;
/// assert_eq!(tenant.name(), "tenant_a");
/// assert!(Prefix::default().is_public());
/// assert!(Prefix::new("tenant-a").is_err());
/// # Ok::<(), oban_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The validated name, interned (see [`Prefix::new`]).
    name: &'static str,
}

impl Prefix {
    /// The default prefix, `public`.
    pub const PUBLIC: Prefix = Prefix { name: "public" };

    /// The longest name PostgreSQL keeps whole (`NAMEDATALEN - 1` bytes); a longer one would be
    /// truncated silently.
    pub const MAX_LEN: usize = 63;

    /// The prefix `name`: an ASCII letter or `_`, then letters, digits or `_`, at most
    /// [`MAX_LEN`](Self::MAX_LEN) bytes, and not starting with `pg_` (PostgreSQL reserves those
    /// schemas). Case is kept (`Tenant` and `tenant` are different schemas).
    ///
    /// Names are interned for the life of the process: each distinct name is stored once.
    ///
    /// # Errors
    /// [`Error::Config`] naming the option and what a prefix may contain.
    pub fn new(name: &str) -> Result<Prefix> {
        check(name).map_err(|why| {
            Error::Config(format!(
                "`prefix` `{}` {why}: a prefix is a PostgreSQL schema name of 1 to {} ASCII \
                 letters, digits and `_`, starting with a letter or `_` (default `public`)",
                name.escape_debug(),
                Self::MAX_LEN
            ))
        })?;
        if name == Self::PUBLIC.name {
            return Ok(Self::PUBLIC);
        }
        static NAMES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
        let mut names = NAMES.lock().expect("prefix names lock");
        let name = match names.get(name) {
            Some(interned) => *interned,
            None => {
                let interned: &'static str = Box::leak(name.to_owned().into_boxed_str());
                names.insert(interned);
                interned
            }
        };
        Ok(Prefix { name })
    }

    /// The schema's name, as given.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// Whether this is the default prefix, `public`, whose names stay unqualified.
    pub fn is_public(self) -> bool {
        self.name == Self::PUBLIC.name
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Self::PUBLIC
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Prefix").field(&self.name).finish()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Why `name` is not a prefix, if it is not.
fn check(name: &str) -> std::result::Result<(), &'static str> {
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Err("is empty"),
        Some(first) if !(first.is_ascii_alphabetic() || first == b'_') => {
            return Err("does not start with an ASCII letter or `_`")
        }
        Some(_) => {}
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("contains a character other than an ASCII letter, digit or `_`");
    }
    if name.len() > Prefix::MAX_LEN {
        return Err("is longer than 63 bytes");
    }
    if name.len() >= 3 && name[..3].eq_ignore_ascii_case("pg_") {
        return Err("starts with `pg_`, which PostgreSQL reserves for its own schemas");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_accepted() {
        for name in ["public", "tenant_a", "_x", "Tenant9", &"a".repeat(63)] {
            let prefix = Prefix::new(name).unwrap();
            assert_eq!(prefix.name(), name);
        }
        assert!(Prefix::new("public").unwrap().is_public());
        assert!(!Prefix::new("tenant_a").unwrap().is_public());
        assert_eq!(
            Prefix::new("tenant_a").unwrap(),
            Prefix::new("tenant_a").unwrap()
        );
    }

    #[test]
    fn anything_that_is_not_a_plain_identifier_is_refused_naming_the_option() {
        for name in [
            "",
            "9lives",
            "tenant-a",
            "a b",
            "a\"b",
            "a.b",
            "é",
            "x;DROP TABLE oban_jobs",
            "a\0b",
            &"a".repeat(64),
            "pg_catalog",
            "PG_x",
        ] {
            let error = Prefix::new(name).unwrap_err().to_string();
            assert!(error.contains("`prefix`"), "{error}");
            assert!(error.contains("ASCII letters, digits and `_`"), "{error}");
        }
    }
}
