use oban::worker;

/// Wrong: a backoff fn takes the failed `&Job`.
fn retry_after(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(attempt))
}
#[worker(backoff = retry_after)]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
