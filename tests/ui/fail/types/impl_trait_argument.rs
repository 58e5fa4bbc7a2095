use oban::worker;

#[worker()]
async fn send_receipt(recipient: impl std::fmt::Display) {
    let _ = recipient;
}

fn main() {}
