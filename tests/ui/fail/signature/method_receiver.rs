use oban::worker;

struct Mailer;

impl Mailer {
    #[worker]
    async fn send_receipt(&self, order_id: i64) {
        let _ = order_id;
    }
}

fn main() {
    let _ = Mailer;
}
