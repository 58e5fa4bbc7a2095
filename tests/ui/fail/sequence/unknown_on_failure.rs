use oban::worker;

#[worker(sequence(keys = [account_id], on_failure = "hodl"))]
async fn post_entry(account_id: i64) {
    let _ = account_id;
}

fn main() {}
