//! `oban web`: the dashboard of `oban-web`, served standalone on an address until Ctrl-C.
//!
//! Safe defaults: loopback unless `--listen` says otherwise; read-only for everyone without a
//! token; `--token` (or `OBAN_WEB_TOKEN`) grants full access to whoever signs in with it, and
//! `--private` hides everything from everyone else.

use std::net::SocketAddr;

use oban_core::admin::Admin;
use oban_web::{Access, Config, TokenAuth};

use crate::exit::{Error, Result, Status};

/// Serves until Ctrl-C (or SIGTERM), then returns.
pub(crate) async fn run(
    admin: Admin,
    listen: SocketAddr,
    token: Option<String>,
    private: bool,
) -> Result<Status> {
    let config = match &token {
        Some(token) => {
            let anonymous = if private {
                Access::None
            } else {
                Access::ReadOnly
            };
            Config::new().resolver(TokenAuth::new(token.clone()).anonymous(anonymous))
        }
        None => Config::new().resolver(Access::ReadOnly),
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Error::new(format!(
            "cannot listen on {listen}: {e} (pick another --listen address)"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::new(format!("cannot read the bound address: {e}")))?;
    let access = match (&token, private) {
        (None, _) => "read-only for everyone (pass --token for full access)",
        (Some(_), false) => "read-only; sign in with the token for full access",
        (Some(_), true) => "only for who signs in with the token",
    };
    eprintln!("Oban dashboard on http://{bound}/ ({access}); Ctrl-C stops it");
    if !bound.ip().is_loopback() {
        eprintln!("note: {bound} is reachable from other machines; put TLS in front of it");
    }
    axum::serve(listener, oban_web::router(admin, config))
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| Error::new(format!("the dashboard stopped: {e}")))?;
    Ok(Status::Done)
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn stopped() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
