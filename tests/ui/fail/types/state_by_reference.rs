use oban::worker;
struct Mailer;
#[worker()]
async fn send_receipt(mailer: &oban::State<Mailer>) {
    let _ = mailer;
}

fn main() {}
