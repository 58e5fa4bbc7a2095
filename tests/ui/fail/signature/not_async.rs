use oban::worker;

#[worker(queue = "mailers")]
fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {
    // The args struct still exists, so this line adds no error of its own.
    let _job = SendReceipt::new(42);
}
