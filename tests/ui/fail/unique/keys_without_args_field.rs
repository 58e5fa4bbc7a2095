use oban::worker;

#[worker(unique(fields = [queue, worker], keys = [order_id]))]
async fn send_receipt(order_id: i64) {
    let _ = order_id;
}

fn main() {}
