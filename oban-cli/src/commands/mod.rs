//! One module per command; [`run`] dispatches.

use crate::cli::Cli;
use crate::exit::{Error, Result, Status};

/// Runs the command `cli` names.
pub(crate) async fn run(cli: Cli) -> Result<Status> {
    let _ = cli;
    Err(Error::new("not yet"))
}
