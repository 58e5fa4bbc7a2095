use oban::worker;

#[worker(unique(keys = [order]))]
async fn send_receipt(order_id: i64, recipient: String) {
    let _ = (order_id, recipient);
}

fn main() {}
