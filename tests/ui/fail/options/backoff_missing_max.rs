use oban::worker;

#[worker(backoff = exponential(base = 1))]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
