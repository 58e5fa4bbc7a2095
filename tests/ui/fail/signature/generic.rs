use oban::worker;

#[worker]
async fn send_receipt<T: std::fmt::Display>(order_id: T) {
    let _ = order_id.to_string();
}

fn main() {
    let _job = SendReceipt::new(42);
}
