use oban::worker;

#[worker(cron = "61 * * * *")]
async fn tick() {}

fn main() {}
