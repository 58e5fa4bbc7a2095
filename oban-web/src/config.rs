//! [`Config`]: who may do what, how often the pages refresh, the CSRF secret.

use std::sync::Arc;
use std::time::Duration;

use crate::access::{Access, Resolver};
use crate::csrf::Secret;

/// How a dashboard behaves. The defaults: every request read-only ([`Access::ReadOnly`]: set
/// a [`Resolver`] before exposing the dashboard beyond trusted operators), numbers refreshed
/// every 5 seconds, a CSRF secret random to this process, bulk actions in batches of 1,000.
///
/// ```
/// use std::time::Duration;
/// use oban_web::{Access, Config};
///
/// let config = Config::new()
///     .resolver(Access::Full)
///     .refresh(Duration::from_secs(2))
///     .secret(b"the same 32+ random bytes on every node behind the balancer");
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) refresh: Duration,
    pub(crate) secret: Secret,
    pub(crate) batch: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("refresh", &self.refresh)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// The defaults.
    pub fn new() -> Config {
        Config {
            resolver: Arc::new(Access::ReadOnly),
            refresh: Duration::from_secs(5),
            secret: Secret::random(),
            batch: 1_000,
        }
    }

    /// Who each request is (see [`Resolver`]; an [`Access`] gives every request that access;
    /// [`TokenAuth`](crate::TokenAuth) signs browsers in with a token).
    pub fn resolver(mut self, resolver: impl Resolver) -> Config {
        self.resolver = Arc::new(resolver);
        self
    }

    /// How often an open page refreshes its numbers (a person can pause it on the page);
    /// `Duration::ZERO` never.
    pub fn refresh(mut self, every: Duration) -> Config {
        self.refresh = every;
        self
    }

    /// The secret CSRF tokens are derived from. Give every process that serves the dashboard
    /// behind one address the same secret, so that a form one serves is accepted by another;
    /// without it each process has its own random secret.
    pub fn secret(mut self, secret: &[u8]) -> Config {
        self.secret = Secret::derive(secret);
        self
    }

    /// How many jobs one statement of a bulk action changes at most (default 1,000; at least 1).
    pub fn batch(mut self, batch: u32) -> Config {
        self.batch = batch.max(1);
        self
    }
}
