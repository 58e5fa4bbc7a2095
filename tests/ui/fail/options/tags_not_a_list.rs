use oban::worker;

#[worker(tags = "billing")]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
