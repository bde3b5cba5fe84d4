//! Asking a witness to cosign (C2SP tlog-witness `add-checkpoint`): one HTTP/1.1 POST over a
//! plain TCP connection, bounded in time and size.
//!
//! This module **is**: [`add_checkpoint`] (the request, the answer read back to
//! [`RESPONSE_LEN_MAX`] bytes, all within one deadline) and [`Answer`]. It is **not**: TLS
//! (the district's witnesses are on its internal network; see docs/THREAT-MODEL.md), retries
//! or the choice of `old` (that is the node's `service::transparency`).

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::witness::{AddCheckpoint, ADD_CHECKPOINT_PATH};

/// Largest answer read from a witness, headers included, in bytes.
pub const RESPONSE_LEN_MAX: usize = 16 * 1024;
/// Most cosignature lines taken from one answer.
pub const COSIGNATURE_LINES_MAX: usize = 8;

/// What a witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200: its cosignature line(s), unverified.
    Cosigned(Vec<String>),
    /// 409 with a `text/x.tlog.size` body: the size it cosigned last.
    Conflict(u64),
    /// Any other status, with the start of its body.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body, at most 200 characters.
        text: String,
    },
}

/// POSTs `request` to `url` (`http://HOST[:PORT][/PREFIX]`; the request goes to
/// `PREFIX/add-checkpoint`) and reads the answer, all within `timeout`. An error is a
/// sentence: the witness could not be reached, timed out, or answered something that is
/// not HTTP.
pub async fn add_checkpoint(
    url: &str,
    request: &AddCheckpoint,
    timeout: Duration,
) -> Result<Answer, String> {
    match tokio::time::timeout(timeout, exchange(url, request)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Splits `http://HOST[:PORT][/PREFIX]` into the address to connect to, the `Host` header
/// and the request path.
pub fn parse_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("witness URL {url:?} does not start with http://"))?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty()
        || authority.contains('@')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("witness URL {url:?} has no usable host"));
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let addr = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((
        addr,
        authority.to_string(),
        format!("{prefix}{ADD_CHECKPOINT_PATH}"),
    ))
}

async fn exchange(url: &str, request: &AddCheckpoint) -> Result<Answer, String> {
    let (addr, host, path) = parse_url(url)?;
    let body = request.encode();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .and(stream.write_all(body.as_bytes()).await)
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(answer) = complete(&buf)? {
            return Ok(answer);
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("cannot read from {addr}: {e}"))?;
        if n == 0 {
            return complete(&buf)?.ok_or_else(|| format!("{addr} closed the connection early"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > RESPONSE_LEN_MAX {
            return Err(format!(
                "{addr} answered more than {RESPONSE_LEN_MAX} bytes"
            ));
        }
    }
}

/// The answer once `buf` holds its headers and its `Content-Length` bytes of body.
fn complete(buf: &[u8]) -> Result<Option<Answer>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "the answer's headers are not text")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| {
            l.strip_prefix("HTTP/1.1 ")
                .or_else(|| l.strip_prefix("HTTP/1.0 "))
        })
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or("the answer is not HTTP/1.1")?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = Some(value.parse::<usize>().map_err(|_| "a bad Content-Length")?);
        } else if name == "transfer-encoding" {
            return Err(
                "the witness answered with a transfer encoding (expected Content-Length)".into(),
            );
        }
    }
    let length = length.ok_or("the answer has no Content-Length")?;
    let body = &buf[end + 4..];
    if body.len() < length {
        return Ok(None);
    }
    let body = String::from_utf8_lossy(&body[..length]).to_string();
    Ok(Some(match status {
        200 => Answer::Cosigned(
            body.lines()
                .filter(|l| !l.is_empty())
                .take(COSIGNATURE_LINES_MAX)
                .map(str::to_string)
                .collect(),
        ),
        409 => match body.trim_end_matches('\n').parse::<u64>() {
            Ok(size) => Answer::Conflict(size),
            Err(_) => Answer::Refused {
                status,
                text: body.chars().take(200).collect(),
            },
        },
        _ => Answer::Refused {
            status,
            text: body.chars().take(200).collect(),
        },
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_address_and_a_path() {
        assert_eq!(
            parse_url("http://127.0.0.1:9000").unwrap(),
            (
                "127.0.0.1:9000".into(),
                "127.0.0.1:9000".into(),
                "/add-checkpoint".into()
            )
        );
        assert_eq!(
            parse_url("http://w.example/tlog/").unwrap(),
            (
                "w.example:80".into(),
                "w.example".into(),
                "/tlog/add-checkpoint".into()
            )
        );
        assert_eq!(parse_url("http://[::1]:8").unwrap().0, "[::1]:8");
        for bad in ["https://w.example", "w.example", "http://", "http://a b"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_read_by_their_length() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n\xe2\x80\x94 w xx\n";
        assert_eq!(
            complete(ok).unwrap(),
            Some(Answer::Cosigned(vec!["\u{2014} w xx".into()]))
        );
        assert_eq!(complete(&ok[..ok.len() - 1]).unwrap(), None);
        let conflict = b"HTTP/1.1 409 Conflict\r\nContent-Type: text/x.tlog.size\r\nContent-Length: 3\r\n\r\n12\n";
        assert_eq!(complete(conflict).unwrap(), Some(Answer::Conflict(12)));
        let refused = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        assert!(matches!(
            complete(refused).unwrap(),
            Some(Answer::Refused { status: 404, .. })
        ));
        assert!(complete(b"SSH-2.0\r\n\r\n").is_err());
        assert!(complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }
}
