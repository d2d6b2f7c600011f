//! What a node process needs around [`crate::node::run`]: its logging, and
//! a shutdown on SIGINT or SIGTERM. Shared by the `ballast` binary and the
//! real-process runner's `ballast-byzantine`, so both log and stop alike.

/// Logs to stdout as `format` ("json" or text) with `filter` (an
/// `EnvFilter` directive; "info" if it does not parse).
pub fn init_logging(format: &str, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
