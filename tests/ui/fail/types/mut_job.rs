use oban::worker;

#[worker()]
async fn send_receipt(job: &mut oban::Job) {
    let _ = job;
}

fn main() {}
