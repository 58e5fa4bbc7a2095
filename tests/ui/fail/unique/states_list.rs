use oban::worker;

#[worker(unique(states = [available, scheduled]))]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
