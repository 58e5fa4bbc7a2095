use oban::worker;

#[worker]
async fn send_receipt<'a>(recipient: std::borrow::Cow<'a, str>) {
    let _ = recipient;
}

fn main() {}
