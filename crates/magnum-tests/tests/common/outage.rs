//! A TCP forwarder between magnumd and a server other tests share (the test database
//! server, the real Keystone) that a test can cut: every open connection is dropped and new
//! ones are closed on arrival, as when the server goes away, without touching the server. Restoring it lets connections
//! through again. It runs on a runtime of its own, so a test blocked on starting magnumd
//! does not stall it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A forwarder to one server, listening on loopback.
pub struct CuttableLink {
    pub address: SocketAddr,
    open: Arc<AtomicBool>,
    cuts: tokio::sync::watch::Sender<u64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl CuttableLink {
    /// Starts forwarding to `upstream` (`host:port`).
    pub fn start(upstream: String) -> CuttableLink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let listener = {
            let _inside = runtime.enter();
            TcpListener::from_std(listener).expect("listener")
        };
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        runtime.spawn({
            let open = open.clone();
            let cuts = cuts.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            }
        });
        CuttableLink {
            address,
            open,
            cuts,
            runtime: Some(runtime),
        }
    }

    /// The server goes away: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|count| *count += 1);
    }

    /// The server is back.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// `url` (`scheme://user:password@host:port/name`) with its server replaced by this link.
    pub fn route(&self, url: &str) -> String {
        let (before_at, after_at) = url.rsplit_once('@').expect("a database URL with a server");
        let (_server, path) = after_at
            .split_once('/')
            .expect("a database URL with a name");
        format!("{before_at}@{}/{path}", self.address)
    }

    /// The `host:port` of the server in `url`.
    pub fn server_of(url: &str) -> String {
        let (_, after_at) = url.rsplit_once('@').expect("a database URL with a server");
        after_at
            .split_once('/')
            .map(|(server, _)| server)
            .unwrap_or(after_at)
            .to_string()
    }
}

impl Drop for CuttableLink {
    fn drop(&mut self) {
        self.cut();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
