//! The service manager (systemd): socket activation (`LISTEN_FDS`) and readiness
//! notification (`Type=notify`, `NOTIFY_SOCKET`).

use std::io;

use tracing::warn;

/// Takes the listening TCP socket passed by systemd socket activation (or any
/// manager speaking its protocol): the first of the `LISTEN_FDS` descriptors, fd 3,
/// when `LISTEN_PID` is this process (or unset). `Ok(None)` when no socket was passed.
///
/// Call it before any thread is started: it removes `LISTEN_FDS` and `LISTEN_PID` from
/// the environment, so that child processes do not take the socket for theirs. The
/// returned listener is non-blocking, ready for [`tokio::net::TcpListener::from_std`]. An error
/// means a socket was passed but is not a listening TCP socket (e.g. a Unix socket).
pub fn take_inherited_listener() -> io::Result<Option<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 1 {
        warn!(
            sockets = fds.len(),
            "socket activation passed several sockets; serving only the first (fd 3)"
        );
    }
    let listener = fds.take_tcp_listener(0)?;
    if let Some(listener) = &listener {
        listener.set_nonblocking(true)?;
    }
    Ok(listener)
}

/// Tells the service manager (systemd `Type=notify`, through `NOTIFY_SOCKET`) that
/// start-up is finished, with a one-line status. Does nothing outside systemd;
/// a failure to notify is logged, never fatal.
pub fn notify_ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Tells the service manager that the server is shutting down (`STOPPING=1`).
pub fn notify_stopping() {
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("shutting down"),
    ]);
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!(error = %err, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}
