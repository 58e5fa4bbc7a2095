//! A workflow end to end: fetch a text, count its words in parallel chunks, report the totals.
//!
//! ```text
//! cargo run --example workflow                        # embedded SQLite file, no server
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run --example workflow
//! ```
//!
//! `fetch` -> `count-0` .. `count-3` (in parallel) -> `report`. Each step is an ordinary job;
//! the counts wait `suspended` until `fetch` completes, the report until every count has. Each
//! step's return value is recorded on its job and read, typed, by the steps after it through
//! [`Flow`]. See docs/workflows.md.

use std::collections::BTreeMap;
use std::time::Duration;

use oban::workflow::{Flow, Upstream, Workflow};
use oban::{worker, JobFilter, JobState, Oban};

/// How many chunks the text is split into, one counting step each.
const CHUNKS: usize = 4;

const TEXT: &str = "It was the best of times, it was the worst of times, it was the age of \
    wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of \
    incredulity, it was the season of Light, it was the season of Darkness, it was the spring of \
    hope, it was the winter of despair, we had everything before us, we had nothing before us, \
    we were all going direct to Heaven, we were all going direct the other way";

/// Stands in for a download: splits the text into `chunks` pieces of whole words.
#[worker(queue = "workflow", max_attempts = 3)]
async fn fetch(chunks: usize) -> Result<Vec<String>, std::io::Error> {
    let words: Vec<&str> = TEXT.split_whitespace().collect();
    let size = words.len().div_ceil(chunks);
    Ok(words.chunks(size).map(|chunk| chunk.join(" ")).collect())
}

/// Counts the words of chunk `index` of the fetched text.
#[worker(queue = "workflow", max_attempts = 3)]
async fn count(
    text: Upstream<Vec<String>>,
    index: usize,
    flow: Flow,
) -> Result<BTreeMap<String, u64>, oban::Error> {
    let chunks = flow.result(&text).await?;
    let mut counts = BTreeMap::new();
    for word in chunks
        .get(index)
        .into_iter()
        .flat_map(|c| c.split_whitespace())
    {
        let word = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if !word.is_empty() {
            *counts.entry(word).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Merges the chunks' counts and prints the most frequent words.
#[worker(queue = "workflow", max_attempts = 3)]
async fn report(
    parts: Vec<Upstream<BTreeMap<String, u64>>>,
    flow: Flow,
) -> Result<Vec<(String, u64)>, oban::Error> {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for part in flow.results(&parts).await? {
        for (word, n) in part {
            *totals.entry(word).or_insert(0) += n;
        }
    }
    let mut top: Vec<(String, u64)> = totals.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(5);
    println!(
        "report (workflow {}): {} chunks, top words:",
        flow.workflow_id(),
        parts.len()
    );
    for (word, n) in &top {
        println!("  {word:>8} {n}");
    }
    Ok(top)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The database comes from DATABASE_URL, or an SQLite file when it is unset.
    let oban = Oban::builder().queue("workflow", 10).start().await?;

    let workflow = Workflow::new("word-count").build(|wf| {
        let fetch = wf.add("fetch", Fetch::new(CHUNKS), ());
        let counts: Vec<_> = (0..CHUNKS)
            .map(|i| {
                wf.add(
                    format!("count-{i}"),
                    Count::new(fetch.upstream(), i),
                    &fetch,
                )
            })
            .collect();
        let parts = counts.iter().map(|step| step.upstream()).collect();
        wf.add("report", Report::new(parts), &counts);
    })?;
    let workflow_id = workflow.id().to_owned();
    let jobs = workflow.insert(&oban).await?;
    println!("inserted workflow {workflow_id}: {} steps", jobs.len());

    // Wait until every step has finished, one way or another (bounded).
    let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut steps = loop {
        let steps = oban.jobs(&JobFilter::ids(ids.clone())).await?;
        if steps.len() == ids.len() && steps.iter().all(|job| job.state.is_final()) {
            break steps;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the workflow did not finish within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    oban.shutdown(Duration::from_secs(5)).await;

    steps.sort_by_key(|job| job.id);
    // Times from the workflow's insert: a step starts once the steps it waits for completed.
    let t0 = steps[0].inserted_at;
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_owned(), |t| {
            format!("+{} ms", (t - t0).num_milliseconds())
        })
    };
    println!("steps:");
    for job in &steps {
        println!(
            "  {:>4} {:<8} {:<7} {:<9} started {:>8}  finished {:>8}  deps {}",
            job.id,
            job.meta["name"].as_str().unwrap_or("?"),
            job.worker,
            job.state.as_str(),
            at(job.attempted_at),
            at(job.completed_at),
            job.meta["deps"],
        );
    }
    if steps.iter().any(|job| job.state != JobState::Completed) {
        return Err("a step did not complete".into());
    }
    Ok(())
}
