use oban::worker;

#[worker(sequence(key = [account_id]))]
async fn post_entry(account_id: i64) {
    let _ = account_id;
}

fn main() {}
