use oban::workflow::{Flow, Upstream, Workflow};
use oban::worker;

#[worker(queue = "flow")]
async fn fetch(size: u64) -> Result<u64, std::io::Error> {
    Ok(size)
}

#[worker(queue = "flow")]
async fn shout(page: Upstream<String>, flow: Flow) -> Result<String, oban::Error> {
    Ok(flow.result(&page).await?.to_uppercase())
}

fn main() {
    let _ = Workflow::new("mismatch").build(|wf| {
        let fetch = wf.add("fetch", Fetch::new(3), ());
        // `fetch` records a `u64`: `Shout` wants the `String` of another step.
        wf.add("shout", Shout::new(fetch.upstream()), &fetch);
    });
}
