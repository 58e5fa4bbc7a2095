//! A pooled connection for an operation that may open a transaction: closed, not handed back to
//! the pool, when the operation's future is dropped before it returns.
//!
//! With sqlx 0.8, a future dropped while `begin()` waits for the server's answer to `BEGIN`
//! leaves the session inside a transaction sqlx does not track: its rollback guard acts only
//! once the transaction depth is raised, after that answer (launchbadge/sqlx#2054,
//! transact-rs/sqlx#4393). The pool then hands the connection to the next borrower, whose
//! statements run inside a transaction nobody commits: a producer's heartbeat row "removed", a
//! job's outcome "recorded", both lost when the session ends. The runtime drops such futures on
//! purpose (an election or a maintenance pass at shutdown, `maintenance::until_stopped`), and an
//! application may too (a timeout around an insert). A lease closes the session instead, and the
//! server rolls back whatever it held open.
//!
//! An operation that returns, with a value or an error, leaves sqlx's view of the session right
//! (an early return drops the `Transaction`, which queues its rollback): [`Lease::release`] then
//! hands the connection back to the pool as usual.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Postgres;

use crate::error::Result;

/// A connection taken from the pool; see the module docs.
pub(super) struct Lease {
    conn: PoolConnection<Postgres>,
    returned: bool,
}

impl Lease {
    /// Takes a connection from `pool`.
    pub(super) async fn acquire(pool: &PgPool) -> Result<Self> {
        Ok(Self {
            conn: pool.acquire().await?,
            returned: false,
        })
    }

    /// The operation returned: the connection goes back to the pool.
    pub(super) fn release(mut self) {
        self.returned = true;
    }
}

impl Deref for Lease {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.returned {
            // Dropped in the middle of the operation: the session may be inside a transaction
            // sqlx does not know about.
            self.conn.close_on_drop();
        }
    }
}
