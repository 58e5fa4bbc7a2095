use std::fmt;

use oban::worker;

// Displays, but is no `std::error::Error`: a worker's error must be one (or a String, &str,
// anyhow::Error), so that its source chain can be recorded.
#[derive(Debug)]
struct MailError;

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the mail server refused")
    }
}

#[worker]
async fn send_receipt(order_id: i64) -> Result<(), MailError> {
    let _ = order_id;
    Err(MailError)
}

fn main() {}
