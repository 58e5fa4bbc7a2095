use oban::worker;

#[worker(timeout = "30 minutes")]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
