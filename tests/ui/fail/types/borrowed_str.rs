use oban::worker;

#[worker(queue = "mailers")]
async fn send_receipt(recipient: &str) {
    let _ = recipient;
}

fn main() {
    let _job = SendReceipt::new("receipt@example.com");
}
