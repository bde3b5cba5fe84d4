//! A few lines of HTTP/1.1 over `std::net::TcpStream`, for tests that
//! must send what no browser would (a foreign `Host`, a POST without its
//! CSRF field, a stolen cookie) and read the status and headers exactly.
//!
//! One request per connection (`Connection: close`); the answer is read to
//! the end, its body de-chunked when sent chunked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

/// How long one exchange may take.
const HTTP_WAIT: Duration = Duration::from_secs(30);

/// One request to send.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/requests?lang=en`.
    pub path: String,
    /// The `Host` header (normally the address connected to).
    pub host: String,
    /// Further headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body (sent with its `Content-Length` when not empty).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A `GET path` to `addr`, with `Host: addr`.
    pub fn get(addr: SocketAddr, path: &str) -> Self {
        HttpRequest {
            method: "GET".into(),
            path: path.into(),
            host: addr.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `POST path` to `addr` of a urlencoded form `fields`.
    pub fn post_form(addr: SocketAddr, path: &str, fields: &[(&str, &str)]) -> Self {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        HttpRequest {
            method: "POST".into(),
            path: path.into(),
            host: addr.to_string(),
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: body.into_bytes(),
        }
    }

    /// The same request with header `name: value` added.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same request with `Cookie: name=value`.
    pub fn cookie(self, name: &str, value: &str) -> Self {
        self.header("Cookie", &format!("{name}={value}"))
    }

    /// The same request with another `Host` header.
    pub fn host(mut self, host: &str) -> Self {
        self.host = host.into();
        self
    }

    /// Sends it to `addr` and reads the whole answer.
    pub fn send(&self, addr: SocketAddr) -> anyhow::Result<HttpResponse> {
        let mut stream = TcpStream::connect_timeout(&addr, HTTP_WAIT)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(HTTP_WAIT))?;
        stream.set_write_timeout(Some(HTTP_WAIT))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.host
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() || self.method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&self.body)?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .with_context(|| format!("reading the answer to {} {}", self.method, self.path))?;
        HttpResponse::parse(&raw)
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Parses a whole HTTP/1.1 answer.
    pub fn parse(raw: &[u8]) -> anyhow::Result<Self> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no end of the headers in the answer")?;
        let head = std::str::from_utf8(&raw[..end]).context("headers not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            body = dechunk(&body)?;
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value the answer sets for cookie `name`, if it sets it.
    pub fn set_cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookies().into_iter().find_map(|c| {
            let (k, rest) = c.split_once('=')?;
            (k.trim() == name).then(|| rest.split(';').next().unwrap_or("").trim().to_string())
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of attribute `attr` on the first tag called `tag` in the
    /// body (`<main data-error="...">`), by plain text search.
    pub fn tag_attr(&self, tag: &str, attr: &str) -> Option<String> {
        let text = self.text();
        let start = text.find(&format!("<{tag}"))?;
        let end = start + text[start..].find('>')?;
        attr_in(&text[start..end], attr)
    }
}

/// The value of `attr="..."` (or `attr='...'`) inside one tag's text.
pub fn attr_in(tag: &str, attr: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(at) = rest.find(attr) {
        let before = rest[..at].chars().last();
        let after = &rest[at + attr.len()..];
        if matches!(before, Some(c) if c.is_whitespace()) {
            if let Some(value) = after.trim_start().strip_prefix('=') {
                let value = value.trim_start();
                let quote = value.chars().next()?;
                if quote == '"' || quote == '\'' {
                    let inner = &value[1..];
                    return Some(inner[..inner.find(quote)?].to_string());
                }
                let end = value
                    .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .unwrap_or(value.len());
                return Some(value[..end].to_string());
            }
        }
        rest = after;
    }
    None
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
pub fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes a chunked body.
fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line")?;
        let line = std::str::from_utf8(&raw[..line_end])?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {line:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            bail!("chunk cut short");
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_chunked_answers_cookies_and_attributes() {
        let raw = b"HTTP/1.1 403 Forbidden\r\nSet-Cookie: vault_portal_1=abc; HttpOnly\r\n\
            Transfer-Encoding: chunked\r\n\r\n5\r\n<main\r\n16\r\n data-error=\"x.y\"></ma\r\n3\r\nin>\r\n0\r\n\r\n";
        let answer = HttpResponse::parse(raw).unwrap();
        assert_eq!(answer.status, 403);
        assert_eq!(
            answer.set_cookie_value("vault_portal_1").as_deref(),
            Some("abc")
        );
        assert_eq!(answer.text(), "<main data-error=\"x.y\"></main>");
        assert_eq!(
            answer.tag_attr("main", "data-error").as_deref(),
            Some("x.y")
        );
        assert_eq!(
            attr_in("<a xdata-error=\"no\" data-error=yes>", "data-error").as_deref(),
            Some("yes")
        );
        assert_eq!(form_encode("a b&c"), "a+b%26c");
    }
}
