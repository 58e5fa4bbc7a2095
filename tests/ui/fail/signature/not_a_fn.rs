use oban::worker;

#[worker(queue = "mailers")]
struct SendReceipt {
    order_id: i64,
}

fn main() {}
