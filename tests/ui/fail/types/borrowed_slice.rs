use oban::worker;

#[worker(queue = "mailers")]
async fn send_receipt(order_ids: &[i64]) {
    let _ = order_ids;
}

fn main() {}
