use std::rc::Rc;

use oban::worker;

async fn flush() {}

#[worker]
async fn send_receipt(order_id: i64) {
    let shared = Rc::new(order_id);
    flush().await;
    let _ = shared;
}

fn main() {}
