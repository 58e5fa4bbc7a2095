use oban::worker;

#[worker()]
async fn send_receipt(mailer: oban::State) {
    let _ = mailer;
}

fn main() {}
