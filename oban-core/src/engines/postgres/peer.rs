//! Leader election (Elixir Oban's `oban_peers`) and producer heartbeats (`oban_producers`).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};

use super::lease::Lease;
use super::millis;
use super::prefix::qualify;
use super::row::utc;
use super::PostgresEngine;
use crate::engine::{mark_producer_meta, Peer, ProducerInfo};
use crate::error::Result;
use crate::prefix::Prefix;

#[async_trait]
impl Peer for PostgresEngine {
    async fn leader_elect(&self, name: &str, node: &str, ttl: Duration) -> Result<bool> {
        // Leased: the node drops an election in flight when it stops, possibly at its `BEGIN`.
        let mut conn = Lease::acquire(&self.pool).await?;
        let elected = elect(&mut conn, self.prefix, name, node, ttl).await;
        conn.release();
        elected
    }

    async fn leader_resign(&self, name: &str, node: &str) -> Result<()> {
        const RESIGN: &str = "DELETE FROM oban_peers WHERE name = $1 AND node = $2";
        sqlx::query(qualify(self.prefix, RESIGN))
            .bind(name)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// One election on `conn` (see [`Peer::leader_elect`]).
async fn elect(
    conn: &mut PgConnection,
    prefix: Prefix,
    name: &str,
    node: &str,
    ttl: Duration,
) -> Result<bool> {
    const EXPIRED: &str =
        "DELETE FROM oban_peers WHERE name = $1 AND expires_at < timezone('UTC', now())";
    const CLAIM: &str = "INSERT INTO oban_peers (name, node, started_at, expires_at)
         VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()) + $3 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at
           WHERE oban_peers.node = excluded.node
         RETURNING node";
    let mut tx = conn.begin().await?;
    sqlx::query(qualify(prefix, EXPIRED))
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let leader: Option<String> = sqlx::query_scalar(qualify(prefix, CLAIM))
        .bind(name)
        .bind(node)
        .bind(millis(ttl))
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(leader.as_deref() == Some(node))
}

/// See [`Engine::producer_list`](crate::engine::Engine::producer_list).
pub(super) async fn producer_list(
    pool: &PgPool,
    prefix: Prefix,
    queue: Option<&str>,
) -> Result<Vec<ProducerInfo>> {
    const SQL: &str = "SELECT uuid, node, queue, meta, started_at, updated_at FROM oban_producers
         WHERE $1::text IS NULL OR queue = $1 ORDER BY queue, node, started_at";
    let rows = sqlx::query(qualify(prefix, SQL))
        .bind(queue)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ProducerInfo {
                uuid: row.try_get("uuid")?,
                node: row.try_get("node")?,
                queue: row.try_get("queue")?,
                meta: row.try_get("meta")?,
                started_at: utc(row.try_get("started_at")?),
                updated_at: utc(row.try_get("updated_at")?),
            })
        })
        .collect()
}

/// See [`Engine::producer_heartbeat`](crate::engine::Engine::producer_heartbeat).
pub(super) async fn producer_heartbeat(
    pool: &PgPool,
    prefix: Prefix,
    uuid: uuid::Uuid,
    node: &str,
    queue: &str,
    meta: Value,
) -> Result<()> {
    // A snapshot (`held`) is stamped `held_at` with this transaction's time; a heartbeat without
    // one keeps the previous snapshot (see `queue/held.rs`).
    const SQL: &str = "INSERT INTO oban_producers (uuid, node, queue, meta)
         VALUES ($1, $2, $3, CASE WHEN $4::jsonb ? 'held'
                             THEN $4::jsonb || jsonb_build_object('held_at', timezone('UTC', now()))
                             ELSE $4::jsonb END)
         ON CONFLICT (uuid) DO UPDATE SET
           meta = CASE WHEN excluded.meta ? 'held' THEN excluded.meta
                       ELSE excluded.meta || jsonb_strip_nulls(jsonb_build_object(
                              'held', oban_producers.meta->'held',
                              'held_at', oban_producers.meta->'held_at')) END,
           updated_at = timezone('UTC', now())";
    sqlx::query(qualify(prefix, SQL))
        .bind(uuid)
        .bind(node)
        .bind(queue)
        .bind(mark_producer_meta(meta))
        .execute(pool)
        .await?;
    Ok(())
}

/// See [`Engine::producer_delete`](crate::engine::Engine::producer_delete).
pub(super) async fn producer_delete(pool: &PgPool, prefix: Prefix, uuid: uuid::Uuid) -> Result<()> {
    const SQL: &str = "DELETE FROM oban_producers WHERE uuid = $1";
    sqlx::query(qualify(prefix, SQL))
        .bind(uuid)
        .execute(pool)
        .await?;
    Ok(())
}
