use oban::worker;

#[worker(queue = "mailers")]
async fn send_receipt(recipient: std::borrow::Cow<'_, str>) {
    let _ = recipient;
}

fn main() {}
