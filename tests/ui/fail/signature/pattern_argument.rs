use oban::worker;

#[worker]
async fn resize((width, height): (u32, u32)) {
    let _ = (width, height);
}

fn main() {
    let _job = Resize::new((640, 480));
}
