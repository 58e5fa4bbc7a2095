use oban::worker;

#[worker(queue = "Mailers", priority = 10, max_attempt = 5, tags = ["a", "a"])]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
