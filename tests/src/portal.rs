//! `vault portal` as a child process: the resident's local web agent,
//! started for an identity directory (and optionally a node address), its
//! one JSON start line (`{"url":"http://127.0.0.1:PORT/?token=HEX"}`) read
//! within [`PORTAL_START_WAIT`], and killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// How long the portal may take to print its start line.
pub const PORTAL_START_WAIT: Duration = Duration::from_secs(30);
/// How long a stopped portal may take to exit after SIGTERM.
const PORTAL_STOP_WAIT: Duration = Duration::from_secs(10);

/// A running `vault portal`.
pub struct Portal {
    /// The child process.
    pub child: Child,
    /// The URL it printed, token included.
    pub url: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The one-time token from the URL.
    pub token: String,
}

impl Portal {
    /// Starts `vault --identity IDENTITY [--node NODE] portal --listen
    /// 127.0.0.1:0 EXTRA...` and reads its start line.
    pub fn start(identity: &Path, node: Option<&str>, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(identity, node, extra, &[])
    }

    /// [`Self::start`] with extra environment variables (e.g. `BROWSER`
    /// for `--open`).
    pub fn start_with_env(
        identity: &Path,
        node: Option<&str>,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(crate::bin("vault")?);
        for (name, value) in env {
            command.env(name, value);
        }
        command
            .env_remove("VAULT_NODE")
            .env_remove("VAULT_IDENTITY")
            .arg("--identity")
            .arg(identity);
        if let Some(node) = node {
            command.arg("--node").arg(node);
        }
        let mut child = command
            .args(["portal", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting vault portal")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep reading so the portal never blocks on a full pipe; it
            // should print nothing more.
            for line in lines.map_while(Result::ok) {
                eprintln!("vault portal printed more on stdout: {line}");
            }
        });
        let line = match rx.recv_timeout(PORTAL_START_WAIT) {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => {
                kill(&mut child);
                bail!("reading vault portal's start line: {e}")
            }
            Ok(None) => {
                let status = child.wait()?;
                bail!("vault portal exited before printing its start line: {status}")
            }
            Err(_) => {
                kill(&mut child);
                bail!("vault portal printed no start line within {PORTAL_START_WAIT:?}")
            }
        };
        match parse_start_line(&line) {
            Ok((url, addr, token)) => Ok(Portal {
                child,
                url,
                addr,
                token,
            }),
            Err(e) => {
                kill(&mut child);
                Err(e)
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The name of its session cookie, `vault_portal_PORT`.
    pub fn cookie_name(&self) -> String {
        format!("vault_portal_{}", self.port())
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn page(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops it with SIGTERM; answers its exit status (killed if it does
    /// not exit within 10 s).
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let start = Instant::now();
        while start.elapsed() < PORTAL_STOP_WAIT {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill(&mut self.child);
        bail!("vault portal did not exit within {PORTAL_STOP_WAIT:?} of SIGTERM")
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Checks the start line against the contract: exactly one JSON object
/// with exactly the key `url`, `http://127.0.0.1:PORT/?token=HEX`. Answers
/// the URL, the address and the token.
pub fn parse_start_line(line: &str) -> anyhow::Result<(String, SocketAddr, String)> {
    let value: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("vault portal's start line is not JSON: {line:?}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| anyhow!("start line not an object: {line}"))?;
    if object.len() != 1 {
        bail!("start line has keys other than url: {line}");
    }
    let url = object["url"]
        .as_str()
        .ok_or_else(|| anyhow!("no url string in {line}"))?
        .to_string();
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("url not http://: {url}"))?;
    let (authority, query) = rest
        .split_once("/?token=")
        .ok_or_else(|| anyhow!("url not HOST:PORT/?token=HEX: {url}"))?;
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("url's authority {authority:?} not IP:PORT"))?;
    if !addr.ip().is_loopback() {
        bail!("the portal listens on {addr}, not loopback");
    }
    if query.is_empty() || !query.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("token {query:?} is not hex");
    }
    Ok((url.clone(), addr, query.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_start_line_is_checked_against_the_contract() {
        let (url, addr, token) =
            parse_start_line("{\"url\":\"http://127.0.0.1:4567/?token=ab12\"}\n").unwrap();
        assert_eq!(url, "http://127.0.0.1:4567/?token=ab12");
        assert_eq!(addr.port(), 4567);
        assert_eq!(token, "ab12");
        for bad in [
            "url=http://127.0.0.1:1/?token=ab",
            "{\"url\":\"http://127.0.0.1:1/?token=xyz\"}",
            "{\"url\":\"http://10.0.0.1:1/?token=ab\"}",
            "{\"url\":\"http://127.0.0.1:1/?token=ab\",\"pid\":1}",
        ] {
            assert!(parse_start_line(bad).is_err(), "{bad}");
        }
    }
}
