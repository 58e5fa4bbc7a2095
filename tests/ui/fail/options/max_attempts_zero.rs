use oban::worker;

#[worker(max_attempts = 0)]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
