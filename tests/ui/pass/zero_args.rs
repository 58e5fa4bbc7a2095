//! A worker without arguments: its args are the empty JSON object.
#![deny(warnings, clippy::pedantic)]

use oban::worker;

/// Cleans up.
#[worker(queue = "maintenance")]
async fn clean_up() {}

fn main() {
    let _job = CleanUp::new();
    let CleanUp {} = CleanUp {};
}
