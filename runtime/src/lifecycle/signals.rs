//! The signals that stop a host: SIGINT, SIGTERM and SIGQUIT on Unix,
//! Ctrl+C elsewhere.

/// The signals that stop a host.
pub(super) struct Signals {
    #[cfg(unix)]
    streams: Vec<(tokio::signal::unix::Signal, &'static str)>,
}

impl Signals {
    #[cfg(unix)]
    pub(super) fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let mut streams = Vec::new();
        for (kind, name) in [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::quit(), "SIGQUIT"),
        ] {
            match signal(kind) {
                Ok(stream) => streams.push((stream, name)),
                Err(error) => tracing::warn!(%error, "cannot listen for {name}"),
            }
        }
        Signals { streams }
    }

    #[cfg(not(unix))]
    pub(super) fn new() -> Signals {
        Signals {}
    }

    /// Waits for the next signal and returns its name.
    #[cfg(unix)]
    pub(super) async fn recv(&mut self) -> &'static str {
        if self.streams.is_empty() {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            for (stream, name) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    #[cfg(not(unix))]
    pub(super) async fn recv(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl+C",
            Err(_) => std::future::pending().await,
        }
    }
}
