//! `failing` (wired once `oban_core::admin` has it).

use std::time::Duration;

use oban_core::admin::Admin;

use crate::exit::{Error, Result, Status};
use crate::output::Output;

pub(crate) async fn run(
    _admin: &Admin,
    _out: Output,
    _since: Duration,
    _top: usize,
) -> Result<Status> {
    Err(Error::new("not yet"))
}
