use oban::worker;

#[worker(timezone = "Europe/Paris")]
async fn tick() {}

fn main() {}
