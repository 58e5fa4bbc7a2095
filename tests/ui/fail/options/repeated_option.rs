use oban::worker;

#[worker(queue = "mailers", priority = 1, queue = "billing")]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
