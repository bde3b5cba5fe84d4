//! `vault portal`: the resident's portal, a local agent that holds the
//! resident's identity and serves web pages on loopback. Everything it
//! shows it fetched and verified with the client library (issuers'
//! signatures, log inclusion proofs against the signed checkpoint), and
//! every approval is signed by the resident's key here: the key never
//! leaves the machine the agent runs on.
//!
//! The modules: `guard` (Host, secret, CSRF, security headers), `routes`
//! (one handler per page or form), `pages` (the HTML), `model` (what the
//! pages show, as plain data) and `text` (the words in English and
//! Chinese, and how dates, durations and sizes are written).
//!
//! **Invariant:** the agent listens on loopback only, answers nothing
//! without its per-run secret, and ends (stops listening) once its one
//! session ends: on sign-out or after the inactivity limit.

mod guard;
mod model;
mod pages;
mod routes;
mod text;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pki::{Identity, ResidentId};
use serde_json::{json, Value};
use time::UtcOffset;
use tokio::sync::Notify;
use vault_client::{ClientError, ErrorCode, VaultClient};

use crate::args::PortalArgs;
use crate::output::CommandResult;

/// Largest form body accepted, in bytes.
pub const FORM_BYTES_MAX: usize = 16 * 1024;
/// Largest document the portal hands to the browser (it is held in memory
/// while verified); larger ones are fetched with `vault get`.
pub const DOWNLOAD_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// The language cookie's name.
pub const LANG_COOKIE: &str = "vault_portal_lang";
/// Inactivity before sign-out, at home and in the service hall (seconds).
pub const IDLE_S_DEFAULT: u64 = 30 * 60;
/// Inactivity before sign-out with `--kiosk` (seconds).
pub const KIOSK_IDLE_S_DEFAULT: u64 = 3 * 60;
/// How long the agent still answers (the signed-out page) after its
/// session ended.
const GRACE_AFTER_END: Duration = Duration::from_secs(5);
/// How long the agent, once stopping, waits for open connections to
/// finish before it stops anyway (a client that never finishes its
/// request must not keep the agent, and the key it holds, alive).
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// The running agent's state, shared by every request.
pub struct Portal {
    identity: Identity,
    nodes: Vec<String>,
    /// The connection to the vault, made on first use and again after a
    /// transient failure.
    client: tokio::sync::Mutex<Option<Arc<VaultClient>>>,
    /// The resident.
    me: ResidentId,
    /// `Host` values accepted (the listening port on loopback names).
    hosts: Vec<String>,
    /// The session cookie's name (with the port: cookies are shared by
    /// every port of a host, so two agents must not read each other's).
    cookie_name: String,
    secrets: Mutex<guard::Secrets>,
    /// The registries' names, once read.
    names: Mutex<Option<model::Names>>,
    idle: Duration,
    kiosk: bool,
    offset: UtcOffset,
    /// Woken when the session ends.
    ended: Notify,
}

impl Portal {
    /// What a page needs about this request and run.
    fn view(&self, lang: text::Lang, csrf: Option<String>) -> pages::View {
        pages::View {
            lang,
            csrf,
            me: self.me.as_str().to_string(),
            offset: self.offset,
            kiosk: self.kiosk,
            idle_s: self.idle.as_secs(),
            path: String::new(),
        }
    }

    /// The connection to the vault (connecting if there is none).
    async fn client(&self) -> Result<Arc<VaultClient>, ClientError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = Arc::new(VaultClient::connect_any(self.identity.clone(), &self.nodes).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drops the connection after a failure that may have broken it, so
    /// the next request connects again (to another node if need be).
    async fn settle<T>(&self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(e) = &result {
            if e.is_transient() || e.code() == "cluster.unavailable" {
                *self.client.lock().await = None;
            }
        }
        result
    }

    /// Ends the session and wakes the shutdown.
    fn end_session(&self) {
        guard::lock(&self.secrets).end();
        self.ended.notify_one();
    }
}

/// `vault portal`: binds loopback, prints `{"url": …}` (one JSON line),
/// serves until its session ends or the process is told to stop.
pub async fn run(identity: Identity, nodes: Vec<String>, args: PortalArgs) -> CommandResult {
    if !args.listen.ip().is_loopback() {
        return Err(ClientError::local(
            ErrorCode::InvalidArgument,
            format!(
                "the portal listens on loopback only (127.0.0.1 or ::1), not {}: it holds your key \
                 and must not be reachable from the network",
                args.listen
            ),
        ));
    }
    let me = ResidentId::parse(identity.cert.name.as_str())?;
    if identity.cert.role != pki::Role::Resident {
        return Err(ClientError::local(
            ErrorCode::InvalidArgument,
            format!(
                "vault portal runs with a resident's identity; {} is a {}",
                identity.cert.name, identity.cert.role
            ),
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            ClientError::local(
                ErrorCode::LocalIo,
                format!("cannot listen on {}: {e}", args.listen),
            )
        })?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| ClientError::local(ErrorCode::LocalIo, e.to_string()))?;
    let port = addr.port();
    let hosts = vec![
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    let token = guard::random_secret().map_err(|_| {
        ClientError::local(ErrorCode::LocalIo, "no randomness for the portal's secret")
    })?;
    let idle_s = args.idle.unwrap_or(if args.kiosk {
        KIOSK_IDLE_S_DEFAULT
    } else {
        IDLE_S_DEFAULT
    });
    let portal = Arc::new(Portal {
        identity,
        nodes,
        client: tokio::sync::Mutex::new(None),
        me,
        hosts,
        cookie_name: format!("vault_portal_{port}"),
        secrets: Mutex::new(guard::Secrets::new(token.clone())),
        names: Mutex::new(None),
        idle: Duration::from_secs(idle_s),
        kiosk: args.kiosk,
        offset: args.utc_offset.unwrap_or_else(crate::human::local_offset),
        ended: Notify::new(),
    });
    let host = if addr.is_ipv4() {
        format!("127.0.0.1:{port}")
    } else {
        format!("[::1]:{port}")
    };
    let url = format!("http://{host}/?token={token}");
    println!("{}", json!({ "url": url }));
    let _launcher = if args.open { open_browser(&url) } else { None };
    let app = routes::router(portal.clone());
    let watcher = tokio::spawn(watch_idle(portal.clone()));
    let stop = {
        let portal = portal.clone();
        async move {
            tokio::select! {
                _ = portal.ended.notified() => tokio::time::sleep(GRACE_AFTER_END).await,
                _ = shutdown_signal() => {}
            }
        }
    };
    let served = serve(listener, app, stop, DRAIN_MAX).await;
    watcher.abort();
    served.map_err(|e| ClientError::local(ErrorCode::LocalIo, e.to_string()))?;
    eprintln!("vault portal: stopped");
    // Nothing more on standard output: the URL line was the one line.
    Ok((Value::Null, String::new()))
}

/// Serves `app` until `stop` completes, then lets open connections finish
/// for at most `drain`: graceful shutdown alone waits for every connection,
/// and one that sends half a request and nothing more never finishes.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    use std::future::IntoFuture;
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        stop.await;
        let _ = stopping.send(());
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .into_future();
    let deadline = async move {
        match stopped.await {
            Ok(()) => tokio::time::sleep(drain).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = served => served,
        () = deadline => {
            eprintln!("vault portal: connections still open; stopping without them");
            Ok(())
        }
    }
}

/// Ends the session (and so the agent) once it has been idle for longer
/// than allowed, or once it ended otherwise (a request that found it idle
/// ends it without waking the shutdown; the URL token left unused counts
/// as idle from the start).
async fn watch_idle(portal: Arc<Portal>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let over = guard::lock(&portal.secrets).over(portal.idle);
        if over {
            portal.end_session();
            return;
        }
    }
}

/// SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A page that sends the browser on to the portal, kept where only the
/// resident can read it, and removed when the agent stops.
struct Launcher {
    dir: std::path::PathBuf,
    page: std::path::PathBuf,
}

impl Launcher {
    /// Writes the page for `url` in a new directory only the owner may
    /// enter (0700; the page 0600), under `$XDG_RUNTIME_DIR` when there is
    /// one, else the system's temporary directory.
    fn write(url: &str) -> std::io::Result<Launcher> {
        use std::io::Write;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let name = guard::random_secret().map_err(|_| std::io::Error::other("no randomness"))?;
        let dir = base.join(format!("vault-portal-{}", &name[..16]));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir)?;
        let page = dir.join("open.html");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&page)?;
        write!(file, "{}", launcher_html(url))?;
        Ok(Launcher { dir, page })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.page);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The launcher page: straight on to `url` (the token's one use).
fn launcher_html(url: &str) -> String {
    let url = url.replace('&', "&amp;").replace('"', "&quot;");
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\">\
         <title>vault portal</title></head>\
         <body><p><a href=\"{url}\">Open your portal / 打开门户</a></p></body></html>"
    )
}

/// Opens the portal in the desktop's browser (`$BROWSER`, else
/// `xdg-open`, `open` on macOS) through a launcher page, so the token is
/// never on a command line other users can read (`ps`); says so on
/// standard error when no browser starts. The launcher is kept until the
/// agent stops.
fn open_browser(url: &str) -> Option<Launcher> {
    let launcher = match Launcher::write(url) {
        Ok(launcher) => launcher,
        Err(e) => {
            eprintln!("vault portal: cannot write the page that opens the browser ({e}); open the address above yourself");
            return None;
        }
    };
    let target = format!("file://{}", launcher.page.display());
    let candidates: Vec<String> = std::env::var("BROWSER")
        .ok()
        .into_iter()
        .chain(["xdg-open".to_string(), "open".to_string()])
        .collect();
    for program in candidates {
        let started = std::process::Command::new(&program)
            .arg(&target)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if started.is_ok() {
            return Some(launcher);
        }
    }
    eprintln!("vault portal: no browser could be started; open the address above yourself");
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn the_launcher_is_private_and_leads_to_the_url() {
        let url = "http://127.0.0.1:1/?token=ab&x=\"";
        let launcher = Launcher::write(url).unwrap_or_else(|e| unreachable!("{e}"));
        let html = std::fs::read_to_string(&launcher.page).unwrap_or_default();
        assert!(
            html.contains("content=\"0;url=http://127.0.0.1:1/?token=ab&amp;x=&quot;\""),
            "{html}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &std::path::Path| {
                std::fs::metadata(p)
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0)
            };
            assert_eq!(mode(&launcher.dir), 0o700);
            assert_eq!(mode(&launcher.page), 0o600);
        }
        let page = launcher.page.clone();
        drop(launcher);
        assert!(!page.exists(), "removed when the agent stops");
    }

    #[test]
    fn a_half_sent_request_does_not_keep_the_agent_alive() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| unreachable!("a test runtime: {e}"));
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| unreachable!("loopback: {e}"));
            let addr = listener
                .local_addr()
                .unwrap_or_else(|e| unreachable!("{e}"));
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
            let (tell, told) = tokio::sync::oneshot::channel::<()>();
            let stop = async move {
                let _ = told.await;
            };
            let server = tokio::spawn(serve(listener, app, stop, Duration::from_millis(200)));
            let mut slow = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| unreachable!("{e}"));
            slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .unwrap_or_else(|e| unreachable!("{e}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = tell.send(());
            let ended = tokio::time::timeout(Duration::from_secs(3), server).await;
            assert!(
                ended.is_ok(),
                "the agent stops although a connection never finished its request"
            );
            drop(slow);
        });
    }
}
