use oban::{worker, Job};

#[worker(sequence(keys = [job]))]
async fn post_entry(account_id: i64, job: &Job) {
    let _ = (account_id, job);
}

fn main() {}
