use oban::worker;

#[worker(unique(keys = [job]))]
async fn send_receipt(order_id: i64, job: &oban::Job) {
    let _ = (order_id, job);
}

fn main() {}
