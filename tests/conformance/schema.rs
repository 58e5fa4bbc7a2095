//! Schema: migrations (idempotent, concurrent) and reindexing.

use oban::{JobFilter, NewJob};
use serde_json::json;

use crate::harness::{Db, Kind};

pub(crate) async fn schema_migrate_is_idempotent_and_reindex_works(kind: Kind) {
    let db = Db::new(kind).await;
    db.engine.schema_migrate().await.unwrap();
    db.engine.schema_migrate().await.unwrap();
    let job = db.insert(NewJob::new("W", json!({}))).await;
    db.engine.schema_reindex().await.unwrap();
    assert_eq!(db.job(job.id).await, job);
    // Migrations from many nodes at once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let engine = db.another_engine().await;
        tasks.push(tokio::spawn(async move { engine.schema_migrate().await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(db.count(JobFilter::new()).await, 1);
}
