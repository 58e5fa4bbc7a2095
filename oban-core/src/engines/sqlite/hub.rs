//! What every SQLite engine of this process on one database file shares: the write lock that makes
//! this process a single writer, and the in-process notifier that stands in for LISTEN/NOTIFY.
//!
//! Hubs are found by the database file's canonical path, so every pool opened on the same file
//! in this process (two `Oban` nodes, a web handler inserting through its own pool) meets in one
//! hub. Processes do not share hubs: another process on the same file is serialised by SQLite's
//! own lock (WAL mode and a busy timeout) and learns of new jobs by polling.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use sqlx::SqlitePool;
use tokio::sync::broadcast;

use crate::notifier::Channel;

/// How many notifications a slow listener may fall behind before it is told it missed some.
const CAPACITY: usize = 4096;

/// The shared state of one database file in this process.
#[derive(Debug)]
pub(crate) struct Hub {
    /// Held for every write the engine makes, so writers of this process queue in order (FIFO)
    /// instead of polling SQLite's lock in the busy handler.
    pub(crate) write: tokio::sync::Mutex<()>,
    /// Notifications: `(channel, payload)`.
    notices: broadcast::Sender<(Channel, String)>,
}

impl Hub {
    /// The hub of the database behind `pool`.
    pub(crate) fn for_pool(pool: &SqlitePool) -> Arc<Hub> {
        let options = pool.connect_options();
        Self::for_file(options.get_filename())
    }

    /// The hub of the database file `path` (in-memory databases have a unique name of their own).
    pub(crate) fn for_file(path: &Path) -> Arc<Hub> {
        // The file may not exist yet (a lazily connected pool): its directory then names it.
        let canonical = std::fs::canonicalize(path).ok().or_else(|| {
            let parent = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            Some(std::fs::canonicalize(parent).ok()?.join(path.file_name()?))
        });
        let key = canonical
            .unwrap_or_else(|| path.to_path_buf())
            .to_string_lossy()
            .into_owned();
        static HUBS: OnceLock<Mutex<HashMap<String, Weak<Hub>>>> = OnceLock::new();
        let mut hubs = HUBS
            .get_or_init(Default::default)
            .lock()
            .expect("sqlite hubs lock");
        if let Some(hub) = hubs.get(&key).and_then(Weak::upgrade) {
            return hub;
        }
        hubs.retain(|_, hub| hub.strong_count() > 0);
        let hub = Arc::new(Hub {
            write: tokio::sync::Mutex::new(()),
            notices: broadcast::channel(CAPACITY).0,
        });
        hubs.insert(key, Arc::downgrade(&hub));
        hub
    }

    /// Sends a notification to every listener of this file in this process.
    pub(crate) fn notify(&self, channel: Channel, payload: String) {
        // No receiver is not an error: nobody listens yet.
        let _ = self.notices.send((channel, payload));
    }

    /// A new listener.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<(Channel, String)> {
        self.notices.subscribe()
    }
}
