use oban::worker;

#[worker(backoff = expnential(base = 1, max = 60))]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
