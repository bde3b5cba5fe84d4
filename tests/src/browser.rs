//! Headless Chromium over WebDriver, for the tests that look at what a
//! person sees: `chromedriver` started on a free loopback port as a child
//! process (in its own process group, so the Chromium it starts goes with
//! it when dropped), driven by the `fantoccini` client over plain HTTP.
//!
//! Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver` packages (`scripts/bootstrap` installs them); when
//! either is missing, [`Browser::start`] fails naming that script, never
//! skipping silently.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

pub use fantoccini;

/// The Chromium the tests drive.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The WebDriver server for it.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver may take to answer on its port.
const DRIVER_START_WAIT: Duration = Duration::from_secs(20);
/// How long a wait for an element or a page load may take.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);
/// The window size screenshots are taken at unless changed.
pub const WINDOW: (u32, u32) = (1280, 900);

/// Fails, naming `scripts/bootstrap`, unless Chromium and chromedriver are
/// installed.
pub fn require_installed() -> anyhow::Result<()> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if !missing.is_empty() {
        bail!(
            "the browser tests need headless Chromium and chromedriver, but {} is missing: \
             run scripts/bootstrap (it installs Debian's chromium and chromium-driver)",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// The Chromium command-line flags: headless, no sandbox (tests run as
/// root), and no background traffic (updates, sync, QUIC probes), which
/// this machine's closed network would answer with floods of failures.
pub fn chromium_args(profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--lang=en-US",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
    args
}

/// A loopback TCP port that was free a moment ago.
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A headless Chromium session. Dropping it kills chromedriver's process
/// group (chromedriver and the Chromium it started); [`Browser::close`]
/// ends the session politely first.
pub struct Browser {
    client: Client,
    driver: Child,
    log: PathBuf,
    /// Holds the fresh profile directory (`--user-data-dir`) and the log.
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session with a fresh
    /// profile at [`WINDOW`] size.
    pub async fn start() -> anyhow::Result<Self> {
        require_installed()?;
        let dir = tempfile::tempdir()?;
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile)?;
        let log = dir.path().join("chromedriver.log");
        let port = free_tcp_port()?;
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let driver = command
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER} (run scripts/bootstrap?)"))?;
        // From here on, a failure drops `guard`, which kills the driver.
        let mut guard = DriverGuard(Some(driver));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(driver) = guard.0.as_mut() {
                if let Some(status) = driver.try_wait()? {
                    bail!(
                        "chromedriver exited at start ({status}); its log:\n{}",
                        tail(&log)
                    );
                }
            }
            if start.elapsed() > DRIVER_START_WAIT {
                bail!(
                    "chromedriver did not listen on {addr} within {DRIVER_START_WAIT:?}; its log:\n{}",
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": CHROMIUM, "args": chromium_args(&profile)}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{addr}"))
            .await
            .map_err(|e| {
                anyhow!(
                    "no Chromium session from chromedriver: {e}; its log:\n{}",
                    tail(&log)
                )
            })?;
        let driver = guard.0.take().context("the driver")?;
        Ok(Browser {
            client,
            driver,
            log,
            _dir: dir,
        })
    }

    /// The fantoccini client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// chromedriver's process id, which is also its process group's id
    /// (the Chromium processes it starts are in that group).
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    /// The last lines of chromedriver's log (for failure messages).
    pub fn driver_log(&self) -> String {
        tail(&self.log)
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.client.current_url().await?.to_string())
    }

    /// The page's source as the browser holds it now.
    pub async fn source(&self) -> anyhow::Result<String> {
        Ok(self.client.source().await?)
    }

    /// The one element matching `css` (fails if there is none).
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no element matches {css:?}"))
    }

    /// Every element matching `css` (possibly none).
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        Ok(self.client.find_all(Locator::Css(css)).await?)
    }

    /// Whether some element matches `css`.
    pub async fn exists(&self, css: &str) -> anyhow::Result<bool> {
        Ok(!self.find_all(css).await?.is_empty())
    }

    /// Waits (up to [`PAGE_WAIT`]) for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .wait()
            .at_most(PAGE_WAIT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waited {PAGE_WAIT:?} for {css:?}"))
    }

    /// Attribute `name` of the one element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self.find(css).await?.attr(name).await?)
    }

    /// The visible text of the whole page body.
    pub async fn body_text(&self) -> anyhow::Result<String> {
        Ok(self.find("body").await?.text().await?)
    }

    /// Replaces the value of the input matching `css` with `value`.
    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let input = self.find(css).await?;
        input.clear().await?;
        input.send_keys(value).await?;
        Ok(())
    }

    /// Clicks the element matching `css`, no waiting.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await?;
        Ok(())
    }

    /// Clicks the element matching `css` (a submit button, a link) and
    /// waits until the page it was on has been replaced by a new, fully
    /// loaded one (after a POST, the page the 303 leads to).
    pub async fn click_and_wait(&self, css: &str) -> anyhow::Result<()> {
        let old = self.find("html").await?;
        self.click(css).await?;
        let start = Instant::now();
        loop {
            match old.tag_name().await {
                Err(e) if e.is_stale_element_reference() => break,
                Err(e) => return Err(e.into()),
                Ok(_) if start.elapsed() > PAGE_WAIT => {
                    bail!("clicking {css:?} did not leave the page within {PAGE_WAIT:?}")
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        loop {
            let state = self
                .client
                .execute("return document.readyState", Vec::new())
                .await;
            if matches!(&state, Ok(serde_json::Value::String(s)) if s == "complete") {
                return Ok(());
            }
            if start.elapsed() > PAGE_WAIT {
                bail!("the page after clicking {css:?} did not load within {PAGE_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets the window's outer size.
    pub async fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        Ok(self.client.set_window_size(width, height).await?)
    }

    /// Sets the viewport (the page's visible area, what a phone's screen
    /// would be) to `width` x `height` CSS pixels: the window is resized by
    /// what its frame takes.
    pub async fn set_viewport_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.set_window_size(width, height).await?;
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight]", Vec::new())
            .await?;
        let got = |i: usize| inner[i].as_u64().unwrap_or(0) as u32;
        let (w, h) = (got(0), got(1));
        if (w, h) != (width, height) && w > 0 && h > 0 {
            self.set_window_size(
                width + width.saturating_sub(w),
                height + height.saturating_sub(h),
            )
            .await?;
        }
        Ok(())
    }

    /// Saves a PNG of the viewport at `path` (creating its directory);
    /// answers the PNG's bytes.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<Vec<u8>> {
        let png = self.client.screenshot().await?;
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
            bail!("the screenshot is not a PNG");
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, &png).with_context(|| format!("writing {}", path.display()))?;
        Ok(png)
    }

    /// A cookie's value, by name, as the browser holds it for the current
    /// page (HttpOnly ones too: WebDriver sees them).
    pub async fn cookie(&self, name: &str) -> anyhow::Result<Option<String>> {
        let cookies = self.client.get_all_cookies().await?;
        Ok(cookies
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string()))
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        let result = self.client.clone().close().await;
        drop(self);
        Ok(result?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills a chromedriver that has not become a [`Browser`] yet.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(driver) = self.0.as_mut() {
            kill_group(driver);
        }
    }
}

/// SIGKILL to the process group `child` leads (chromedriver and the
/// Chromium processes it started), then reaps `child`.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The last 4 KiB of the file at `path`, as text.
fn tail(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    let start = bytes.len().saturating_sub(4096);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{BufRead, BufReader, Write};

    use super::*;

    /// A one-thread HTTP server answering every request with `page`; the
    /// request lines it saw go to the returned receiver.
    fn serve(page: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok() && line.trim() != "" {
                    line.clear();
                }
                if tx.send(first.trim().to_string()).is_err() {
                    return;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        (port, rx)
    }

    const PAGE: &str = "<!doctype html><html lang=\"en\"><head><title>harness</title></head>\
        <body><main data-page=\"one\"><form method=\"get\" action=\"/next\">\
        <input type=\"number\" name=\"max_uses\" value=\"1\">\
        <button type=\"submit\" data-action=\"go\">Go</button></form></main></body></html>";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chromium_over_webdriver_loads_fills_submits_and_screenshots() {
        let (port, requests) = serve(PAGE);
        let browser = Browser::start().await.unwrap();
        let url = format!("http://127.0.0.1:{port}/first");
        browser.goto(&url).await.unwrap();
        assert_eq!(browser.client().title().await.unwrap(), "harness");
        assert!(browser.exists("main[data-page=one]").await.unwrap());
        browser.fill("input[name=max_uses]", "3").await.unwrap();
        browser.click_and_wait("[data-action=go]").await.unwrap();
        assert!(browser.url().await.unwrap().ends_with("/next?max_uses=3"));
        let seen: Vec<String> = requests.try_iter().collect();
        assert!(
            seen.contains(&"GET /next?max_uses=3 HTTP/1.1".to_string()),
            "{seen:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        let png = browser
            .screenshot(&dir.path().join("page.png"))
            .await
            .unwrap();
        assert!(png.len() > 100);
        browser.set_viewport_size(390, 844).await.unwrap();
        let inner = browser
            .client()
            .execute("return [window.innerWidth, window.innerHeight]", Vec::new())
            .await
            .unwrap();
        assert_eq!(inner, serde_json::json!([390, 844]));
        browser.close().await.unwrap();
    }

    /// Process ids whose process group is `group` (from `/proc/PID/stat`).
    fn group_members(group: u32) -> Vec<u32> {
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...: comm may hold spaces.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let pgrp = rest.split_whitespace().nth(2).and_then(|f| f.parse().ok());
            if pgrp == Some(group) {
                members.push(pid);
            }
        }
        members
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_browser_leaves_no_chromium_behind() {
        let (port, _requests) = serve(PAGE);
        let browser = Browser::start().await.unwrap();
        browser
            .goto(&format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap();
        let group = browser.driver_pid();
        assert!(group_members(group).len() > 1, "Chromium runs in the group");
        drop(browser);
        let start = Instant::now();
        while !group_members(group).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "left behind: {:?}",
                group_members(group)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
