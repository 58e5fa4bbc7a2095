use oban::worker;

#[worker]
async fn send_receipt(_: i64) {}

fn main() {}
