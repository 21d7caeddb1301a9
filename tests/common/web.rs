//! Web service start-up for tests: Herald's service in-process on a free 127.0.0.1 port
//! ([`WebListener`]), and for the real `herald serve` a free port and its health check.

use std::net::SocketAddr;
use std::time::Duration;

use herald::app::App;
use herald::http::{self, Web};

/// A bound listener on a free 127.0.0.1 port: its base URL is known before the app is
/// built (for `--base-url`); [`WebListener::serve`] then serves the app on it.
pub struct WebListener {
    listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
}

impl WebListener {
    /// Binds a free port.
    pub async fn bind() -> WebListener {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        WebListener {
            listener,
            addr,
            base: format!("http://{addr}/"),
        }
    }

    /// Serves `app` until the returned sender is dropped or sends.
    pub fn serve(self, app: &App) -> tokio::sync::oneshot::Sender<()> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(http::serve(
            self.listener,
            Web::new(app.clone()),
            async move {
                let _ = stopped.await;
            },
        ));
        stop
    }
}

/// The real `herald serve` on a free 127.0.0.1 port (not spawned yet, so a caller can add
/// environment or time the start), with `schedule` if given, against `upstream` and
/// `projects`; and the port it listens on.
pub fn serve_command(
    sandbox: &super::Sandbox,
    upstream: &str,
    projects: &std::path::Path,
    schedule: Option<&str>,
) -> (tokio::process::Command, u16) {
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_herald"));
    serve_command_of(program, sandbox, upstream, projects, schedule)
}

/// [`serve_command`] with another build of `herald`.
pub fn serve_command_of(
    program: &std::path::Path,
    sandbox: &super::Sandbox,
    upstream: &str,
    projects: &std::path::Path,
    schedule: Option<&str>,
) -> (tokio::process::Command, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve".to_string(), "--listen".into(), listen];
    if let Some(schedule) = schedule {
        args.extend(["--schedule".to_string(), schedule.to_string()]);
    }
    args.extend(sandbox.args(upstream, Some(projects)));
    let command = sandbox.command_of(
        program,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    (command, port)
}

/// A free 127.0.0.1 port (bound and released), for `herald serve --listen`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether `herald serve` on `port` answers its health check with 200.
pub async fn healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream
        .write_all(b"GET /healthcheck HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200")
}

/// Asks [`healthy`] every 20 ms until it says yes or `within` has passed; whether it did.
pub async fn wait_healthy(port: u16, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if healthy(port).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
