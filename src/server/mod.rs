//! The server: the accept loop, the sessions, and the actors that own all shared state.

mod accounts;
mod member;
mod processor;
mod room;
mod session;
pub mod storage;
#[cfg(test)]
mod testing;
mod user;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::settings::Settings;
use processor::ServerHandle;
use session::SessionContext;
use storage::{Loaded, StorageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct Server {
    listener: TcpListener,
    settings: Arc<Settings>,
    store: Store,
    loaded: Loaded,
    store_task: JoinHandle<()>,
}

impl Server {
    /// Opens the database and binds the listener; nothing is served until [`Server::run`].
    pub async fn bind(settings: Settings) -> Result<Self, ServerError> {
        let (store, loaded, store_task) = Store::open(settings.storage()).await?;
        let listener =
            TcpListener::bind(&settings.addr)
                .await
                .map_err(|source| ServerError::Listen {
                    addr: settings.addr.clone(),
                    source,
                })?;
        Ok(Self {
            listener,
            settings: Arc::new(settings),
            store,
            loaded,
            store_task,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` resolves, then tells every client, lets their queued
    /// lines go out (for at most the grace period), writes what history is pending, and
    /// returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let context = SessionContext {
            server: ServerHandle::spawn(&self.settings, self.store.clone(), self.loaded),
            settings: self.settings.clone(),
            shutdown: CancellationToken::new(),
        };
        let sessions = TaskTracker::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        // The session logs in inside its own task: a silent client never
                        // holds up the next accept.
                        sessions.spawn(session::serve(socket, peer, context.clone()));
                    }
                    Err(error) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        info!(sessions = sessions.len(), "shutting down");
        drop(self.listener);
        context.shutdown.cancel();
        sessions.close();
        let grace = self.settings.shutdown_grace() + Duration::from_secs(1);
        if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
            warn!("some sessions did not finish in time");
        }
        self.store.close().await;
        let _ = self.store_task.await;
    }
}
