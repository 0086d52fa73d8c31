//! A web app as a service of the host (feature `axum`): it shares the
//! host's lifecycle and shutdown, with no signal handler and no runtime of
//! its own.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::model::service::HostedService;

/// An axum app served as a lifecycle service of the host.
///
/// It starts listening in `start` (before any background job runs), stops
/// accepting connections as soon as stop begins (its `stopping` hook), and
/// in `stop` waits for the requests in flight until the shutdown deadline.
/// Requests still running then are answered `503 Service Unavailable` at
/// once, and their connections close, rather than hang on.
///
/// Its handlers can take the host's [`HostHandle`](crate::HostHandle) as
/// `Extension<HostHandle>` and the peer's address as
/// `ConnectInfo<SocketAddr>`.
///
/// # Examples
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use hosted::web::WebServer;
/// use hosted::Host;
///
/// # async fn run() -> std::io::Result<()> {
/// let app = Router::new().route("/health", get(|| async { "ok" }));
/// let web = WebServer::bind("127.0.0.1:8080", app).await?;
/// println!("listening on http://{}", web.local_addr());
/// let report = Host::builder().service(web).build().unwrap().run().await;
/// # drop(report); Ok(()) }
/// ```
pub struct WebServer {
    name: Cow<'static, str>,
    local_addr: SocketAddr,
    listener: Option<TcpListener>,
    router: Option<axum::Router>,
    /// Stops accepting connections: fired when stop begins.
    shutdown: CancellationToken,
    /// Ends the requests still in flight with `503`: fired at the deadline.
    cutoff: CancellationToken,
    /// Requests being answered now.
    in_flight: Arc<AtomicUsize>,
    server: Option<JoinHandle<io::Result<()>>>,
}

/// Counts a request as in flight until it is answered or dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for WebServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebServer")
            .field("name", &self.name)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl WebServer {
    /// Serves `router` on a bound `listener`.
    ///
    /// # Errors
    ///
    /// If the listener's address cannot be read.
    pub fn new(listener: TcpListener, router: axum::Router) -> io::Result<WebServer> {
        Ok(WebServer {
            name: Cow::Borrowed("web"),
            local_addr: listener.local_addr()?,
            listener: Some(listener),
            router: Some(router),
            shutdown: CancellationToken::new(),
            cutoff: CancellationToken::new(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            server: None,
        })
    }

    /// Binds `addr` (port 0 picks a free port) and serves `router` on it.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs, router: axum::Router) -> io::Result<WebServer> {
        WebServer::new(TcpListener::bind(addr).await?, router)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds the host's handle to the router's extensions.
    pub(crate) fn attach(&mut self, handle: crate::HostHandle) {
        self.router = self
            .router
            .take()
            .map(|router| router.layer(axum::Extension(handle)));
    }

    /// Names the service (default `"web"`), for a host that serves more than
    /// one app.
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> WebServer {
        self.name = name.into();
        self
    }
}

impl HostedService for WebServer {
    type Error = io::Error;

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }

    async fn start(&mut self, _cancel: CancellationToken) -> io::Result<()> {
        let (Some(listener), Some(router)) = (self.listener.take(), self.router.take()) else {
            return Err(io::Error::other("the web server was already started"));
        };
        let shutdown = self.shutdown.clone();
        let cutoff = self.cutoff.clone();
        let in_flight = self.in_flight.clone();
        // Each request races the cutoff: axum serves every connection on a
        // task of its own, which only this can end.
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let cutoff = cutoff.clone();
                let counted = InFlight::enter(&in_flight);
                async move {
                    let _counted = counted;
                    tokio::select! {
                        response = next.run(request) => response,
                        () = cutoff.cancelled() => {
                            axum::response::IntoResponse::into_response(
                                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            )
                        }
                    }
                }
            },
        ));
        self.server = Some(tokio::spawn(async move {
            // With the peer's address (`ConnectInfo<SocketAddr>`), which
            // handlers that trust loopback callers check.
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        }));
        tracing::info!(service = %self.name, address = %self.local_addr, "listening on http://{}", self.local_addr);
        Ok(())
    }

    async fn stopping(&mut self, _deadline: CancellationToken) -> io::Result<()> {
        // Stop accepting connections now; requests in flight go on.
        self.shutdown.cancel();
        Ok(())
    }

    async fn stop(&mut self, deadline: CancellationToken) -> io::Result<()> {
        self.shutdown.cancel();
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        // The server first: one that has already finished is not blamed
        // for a deadline that passed before this step began.
        tokio::select! {
            biased;
            result = server => result.map_err(io::Error::other)?,
            () = deadline.cancelled() => {
                // Cut off, every request answers at once and the graceful
                // shutdown ends by itself; the host has no time left to wait.
                let in_flight = self.in_flight.load(Ordering::Acquire);
                self.cutoff.cancel();
                match in_flight {
                    // Idle connections only: cutting them off loses nothing.
                    0 => Ok(()),
                    n => Err(io::Error::other(format!(
                        "{n} request(s) were still in flight at the shutdown deadline; they were answered 503",
                    ))),
                }
            }
        }
    }
}
