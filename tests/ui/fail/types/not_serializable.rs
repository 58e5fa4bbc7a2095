use oban::worker;

/// Not `Serialize` nor `Deserialize`: it cannot be stored in a job's args.
pub struct Receipt {
    pub order_id: i64,
}

#[worker]
async fn send_receipt(order_id: i64, receipt: Receipt) {
    let _ = (order_id, receipt.order_id);
}

fn main() {}
