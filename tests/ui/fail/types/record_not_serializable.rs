use oban::worker;

// A value a worker returns to record must serialize: this one does not.
struct Report {
    rows: u64,
}

#[worker]
async fn build_report(day: String) -> Result<Report, std::io::Error> {
    let _ = day;
    Ok(Report { rows: 1 })
}

fn main() {}
