use oban::worker;

// `record_limit` only means something for a fn that returns a value to record.
#[worker(record_limit = 1000)]
async fn send_receipt(order_id: i64) -> Result<(), std::io::Error> {
    let _ = order_id;
    Ok(())
}

// At least 1.
#[worker(record_limit = 0)]
async fn export(day: String) -> Result<String, std::io::Error> {
    Ok(day)
}

fn main() {}
