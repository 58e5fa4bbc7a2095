//! Queue internals: a producer per queue fetches jobs, an executor runs each one, and the
//! node's completer records outcomes in batches.

pub(crate) mod ack_split;
pub(crate) mod ahead;
pub(crate) mod completer;
pub(crate) mod executor;
pub(crate) mod held;
pub(crate) mod load;
pub(crate) mod producer;
pub(crate) mod span;
