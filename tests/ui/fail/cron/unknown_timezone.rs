use oban::worker;

#[worker(cron = "0 9 * * *", timezone = "Europe/Atlantis")]
async fn tick() {}

fn main() {}
