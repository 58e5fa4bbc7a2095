//! The dashboard mounted in an application's own axum server, next to a node that works a few
//! queues: mail that sometimes fails, image resizes that take a while, a sync that always
//! fails and is discarded, a report on a cron schedule.
//!
//! ```text
//! cargo run -p oban-web --example dashboard          # embedded SQLite file, no server
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p oban-web --example dashboard
//! # then open http://127.0.0.1:4000/oban (OBAN_WEB_LISTEN=host:port to change)
//! ```
//!
//! The demo gives every request full access: it listens on loopback. An application exposed to
//! others sets a [`oban_web::Resolver`] that knows its users.

use std::time::Duration;

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use oban::{worker, Oban};
use oban_web::{Access, Config};
use rand::Rng;

/// Sends an order's receipt; the mail server turns some away.
#[worker(queue = "mailers", max_attempts = 5)]
async fn send_receipt(order_id: i64, email: String) -> Result<(), std::io::Error> {
    pause(20..200).await;
    if order_id % 7 == 0 {
        return Err(std::io::Error::other(format!(
            "SMTP 451 for {email}: mailbox busy, try again later"
        )));
    }
    Ok(())
}

/// Resizes an uploaded image; huge ones are refused.
#[worker(queue = "media", max_attempts = 3)]
async fn resize_image(path: String, width: u32) -> Result<(), std::io::Error> {
    pause(100..800).await;
    if width > 4_000 {
        return Err(std::io::Error::other(format!(
            "{path}: {width}px exceeds the 4000px limit"
        )));
    }
    Ok(())
}

/// Pushes stock levels to a partner whose API is down.
#[worker(queue = "sync", max_attempts = 2)]
async fn sync_inventory(sku: String) -> Result<(), std::io::Error> {
    pause(50..150).await;
    Err(std::io::Error::other(format!(
        "partner API answered 503 Service Unavailable for {sku}"
    )))
}

/// The daily figures, on a cron schedule.
#[worker(queue = "reports", max_attempts = 1)]
async fn daily_report(kind: String) -> Result<(), std::io::Error> {
    let _ = kind;
    pause(300..900).await;
    Ok(())
}

async fn pause(millis: std::ops::Range<u64>) {
    let ms = rand::thread_rng().gen_range(millis);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let oban = Oban::builder()
        .queue("mailers", 10)
        .queue("media", 4)
        .queue("sync", 2)
        .queue("reports", 1)
        .cron("* * * * *", DailyReport::new("sales".into()))
        .start()
        .await?;

    // A trickle of work, so that the charts move.
    let producer = oban.clone();
    tokio::spawn(async move {
        let mut order_id = 0_i64;
        loop {
            order_id += 1;
            let width = rand::thread_rng().gen_range(400..5_000);
            let inserted = async {
                SendReceipt::new(order_id, format!("customer{order_id}@example.com"))
                    .insert(&producer)
                    .await?;
                if order_id % 3 == 0 {
                    ResizeImage::new(format!("uploads/{order_id}.jpg"), width)
                        .insert(&producer)
                        .await?;
                }
                if order_id % 10 == 0 {
                    SyncInventory::new(format!("SKU-{order_id:05}"))
                        .insert(&producer)
                        .await?;
                }
                Ok::<(), oban::Error>(())
            };
            if let Err(error) = inserted.await {
                eprintln!("could not insert: {error}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let app = Router::new()
        .route("/", get(|| async { Redirect::to("/oban") }))
        .nest(
            "/oban",
            oban_web::router(&oban, Config::new().resolver(Access::Full)),
        );
    let listen = std::env::var("OBAN_WEB_LISTEN").unwrap_or_else(|_| "127.0.0.1:4000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "dashboard on http://{}/oban (Ctrl-C stops)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    oban.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
