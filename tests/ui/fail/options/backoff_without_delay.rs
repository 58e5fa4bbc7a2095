use oban::worker;

#[worker(backoff = linear)]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
