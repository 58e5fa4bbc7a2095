use oban::worker;

#[worker(period = 60)]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
