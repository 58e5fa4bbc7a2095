use oban::worker;

#[worker(retries = 3)]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
