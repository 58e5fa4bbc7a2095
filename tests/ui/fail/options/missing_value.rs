use oban::worker;

#[worker(queue = , priority = 10)]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
