use oban::worker;

#[worker(unique(period = infinite))]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
