use oban::worker;

#[derive(Debug)]
struct MailError;

#[worker]
async fn send_receipt(order_id: i64) -> Result<(), MailError> {
    let _ = order_id;
    Err(MailError)
}

fn main() {}
