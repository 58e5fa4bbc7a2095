use oban::worker;

#[worker]
async unsafe fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
