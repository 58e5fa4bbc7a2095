use oban::worker;

#[worker(cron = ["0 * * * *", "every day"])]
async fn tick() {}

fn main() {}
