//! What every handler shares ([`App`]) and where its data comes from ([`Source`]).

use oban_core::admin::Admin;
use oban_core::Oban;

use crate::charts::Recorder;
use crate::config::Config;

/// What a dashboard reads and acts through: an [`Admin`] on the database, and, when it is
/// mounted in a running node, that node's name and a [`Recorder`] of its job events for the
/// overview's charts (made from the node, it must be made inside a Tokio runtime). Made from an [`Oban`]
/// node (`&oban`) or from an [`Admin`] (no node: the standalone `oban web`).
///
/// ```no_run
/// # async fn demo(oban: oban_core::Oban) -> oban_core::Result<()> {
/// use oban_core::admin::Admin;
/// use oban_web::{Config, Source};
///
/// let from_node = Source::from(&oban);
/// let standalone = Source::from(Admin::connect("sqlite://jobs.db", "public").await?);
/// # let _ = (from_node, standalone);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Source {
    pub(crate) admin: Admin,
    pub(crate) node: Option<String>,
    pub(crate) recorder: Option<Recorder>,
}

impl From<&Oban> for Source {
    fn from(oban: &Oban) -> Source {
        Source {
            admin: oban.admin(),
            node: Some(oban.node().to_owned()),
            recorder: Some(Recorder::attach(oban)),
        }
    }
}

impl From<Oban> for Source {
    fn from(oban: Oban) -> Source {
        Source::from(&oban)
    }
}

impl From<Admin> for Source {
    fn from(admin: Admin) -> Source {
        Source {
            admin,
            node: None,
            recorder: None,
        }
    }
}

/// How many jobs per queue and state the pages count row by row before PostgreSQL's estimate
/// stands in (shown with `~`): counting is what a page costs, and pages refresh every few
/// seconds.
pub(crate) const EXACT_UP_TO: u64 = 10_000;

/// The state behind every route.
pub(crate) struct App {
    pub(crate) source: Source,
    pub(crate) config: Config,
}

impl App {
    pub(crate) fn admin(&self) -> &Admin {
        &self.source.admin
    }
}
