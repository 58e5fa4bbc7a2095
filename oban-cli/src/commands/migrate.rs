//! `migrate` (wired once `oban_core::admin` has it).

use oban_core::admin::Admin;

use crate::exit::{Error, Result, Status};
use crate::output::Output;

pub(crate) async fn run(_admin: &Admin, _out: Output, _check: bool) -> Result<Status> {
    Err(Error::new("not yet"))
}
