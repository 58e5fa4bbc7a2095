use oban::worker;

#[worker(sequence(keys = [account]))]
async fn post_entry(account_id: i64, cents: i64) {
    let _ = (account_id, cents);
}

fn main() {}
