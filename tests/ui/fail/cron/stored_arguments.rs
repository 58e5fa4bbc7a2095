use oban::worker;

#[worker(cron = "@hourly")]
async fn report(account_id: i64) {
    let _ = account_id;
}

fn main() {}
