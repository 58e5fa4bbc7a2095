use oban::worker;

#[worker(unique(timestamp = updated_at))]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
