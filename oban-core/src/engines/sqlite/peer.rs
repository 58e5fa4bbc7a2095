//! Leader election (`oban_peers`) and producer heartbeats (`oban_producers`).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::row::{self, now, parse_ts, plus, ts, utc};
use super::SqliteEngine;
use crate::engine::{mark_producer_meta, Peer, ProducerInfo};
use crate::error::{Error, Result};

#[async_trait]
impl Peer for SqliteEngine {
    async fn leader_elect(&self, name: &str, node: &str, ttl: Duration) -> Result<bool> {
        let (name, node) = (name.to_owned(), node.to_owned());
        let leader: Option<String> = self
            .write_tx(move |conn| {
                Box::pin(async move {
                    let now = now();
                    sqlx::query("DELETE FROM oban_peers WHERE name = ?1 AND expires_at < ?2")
                        .bind(&name)
                        .bind(ts(now))
                        .execute(&mut *conn)
                        .await?;
                    let leader: Option<String> = sqlx::query_scalar(
                        "INSERT INTO oban_peers (name, node, started_at, expires_at)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at
                           WHERE oban_peers.node = excluded.node
                         RETURNING node",
                    )
                    .bind(&name)
                    .bind(&node)
                    .bind(ts(now))
                    .bind(ts(plus(now, ttl)))
                    .fetch_optional(&mut *conn)
                    .await?;
                    Ok(leader.filter(|leader| *leader == node))
                })
            })
            .await?;
        Ok(leader.is_some())
    }

    async fn leader_resign(&self, name: &str, node: &str) -> Result<()> {
        let _write = self.hub.write.lock().await;
        sqlx::query("DELETE FROM oban_peers WHERE name = ?1 AND node = ?2")
            .bind(name)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// See [`Engine::producer_list`](crate::engine::Engine::producer_list).
pub(super) async fn producer_list(
    engine: &SqliteEngine,
    queue: Option<&str>,
) -> Result<Vec<ProducerInfo>> {
    let rows = sqlx::query(
        "SELECT uuid, node, queue, meta, started_at, updated_at FROM oban_producers
         WHERE ?1 IS NULL OR queue = ?1 ORDER BY queue, node, started_at",
    )
    .bind(queue)
    .fetch_all(&engine.pool)
    .await?;
    rows.iter().map(producer_from_row).collect()
}

/// See [`Engine::producer_heartbeat`](crate::engine::Engine::producer_heartbeat).
pub(super) async fn producer_heartbeat(
    engine: &SqliteEngine,
    uuid: uuid::Uuid,
    node: &str,
    queue: &str,
    meta: Value,
) -> Result<()> {
    let _write = engine.hub.write.lock().await;
    // A snapshot (`held`) is stamped `held_at` with the heartbeat's time, taken under the write
    // lock like a claim's; a heartbeat without one keeps the previous snapshot (see
    // `queue/held.rs`).
    sqlx::query(
        "INSERT INTO oban_producers (uuid, node, queue, meta, started_at, updated_at)
         VALUES (?1, ?2, ?3,
                 CASE WHEN json_type(?4, '$.held') IS NOT NULL THEN json_set(?4, '$.held_at', ?5)
                      ELSE json(?4) END,
                 ?5, ?5)
         ON CONFLICT (uuid) DO UPDATE SET
           meta = CASE
             WHEN json_type(excluded.meta, '$.held') IS NOT NULL THEN excluded.meta
             WHEN json_type(oban_producers.meta, '$.held') IS NOT NULL
               THEN json_set(excluded.meta, '$.held', json(oban_producers.meta->'held'),
                             '$.held_at', oban_producers.meta->>'held_at')
             ELSE excluded.meta END,
           updated_at = excluded.updated_at",
    )
    .bind(uuid.to_string())
    .bind(node)
    .bind(queue)
    .bind(mark_producer_meta(meta).to_string())
    .bind(ts(now()))
    .execute(&engine.pool)
    .await?;
    Ok(())
}

/// See [`Engine::producer_delete`](crate::engine::Engine::producer_delete).
pub(super) async fn producer_delete(engine: &SqliteEngine, uuid: uuid::Uuid) -> Result<()> {
    let _write = engine.hub.write.lock().await;
    sqlx::query("DELETE FROM oban_producers WHERE uuid = ?1")
        .bind(uuid.to_string())
        .execute(&engine.pool)
        .await?;
    Ok(())
}

fn producer_from_row(row: &SqliteRow) -> Result<ProducerInfo> {
    let uuid: String = row.try_get("uuid")?;
    let started_at: String = row.try_get("started_at")?;
    let updated_at: String = row.try_get("updated_at")?;
    Ok(ProducerInfo {
        uuid: uuid
            .parse()
            .map_err(|e| Error::InvalidJob(format!("producer uuid `{uuid}`: {e}")))?,
        node: row.try_get("node")?,
        queue: row.try_get("queue")?,
        meta: row::json_col(row, "meta", Value::Object(Default::default()))?,
        started_at: utc(parse_ts(&started_at)?),
        updated_at: utc(parse_ts(&updated_at)?),
    })
}
