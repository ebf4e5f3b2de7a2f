//! The signals that ask a run, a send or the simulator to stop.

/// Resolves on the first request to stop: Ctrl-C (SIGINT), SIGTERM (what `timeout`, CI runners,
/// `docker stop` and systemd send) or SIGHUP (the terminal went away). Never resolves if no
/// handler can be installed, so a failure to listen is not mistaken for a request.
pub async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { std::future::pending::<()>().await },
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
