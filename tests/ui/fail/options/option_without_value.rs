use oban::worker;

#[worker(queue)]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
