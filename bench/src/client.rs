//! A minimal HTTP/1.1 client over one keep-alive `TcpStream`.
//!
//! The load generator shares the machine's two cores with the server it measures, so
//! every cycle it spends is a cycle the server does not get. A general client (hyper,
//! reqwest) would parse and allocate more than this needs: the harness sends requests
//! it built once, and reads only the status line, `Content-Length` and the body.
//! The same client drives redauth and every baseline, so its cost cancels in the ratios.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest response head accepted; redauth's are under 1 KiB.
const MAX_HEAD_BYTES: usize = 16 * 1024;

pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` holding data read from the socket.
    filled: usize,
    /// Bytes at the front of `buf` that belong to the previous response.
    consumed: usize,
}

/// A response as it sits in the connection's buffer, valid until the next request.
pub struct Response<'a> {
    pub status: u16,
    /// Status line and headers, for the setup steps that read `Set-Cookie`.
    pub head: &'a [u8],
    pub body: &'a [u8],
    /// Head plus body: what crossed the wire.
    pub wire_len: usize,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are written in one call and must leave at once, as a browser's would.
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 8 * 1024],
            filled: 0,
            consumed: 0,
        })
    }

    /// Writes `request` (a complete HTTP/1.1 request) and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Response<'_>> {
        self.buf.copy_within(self.consumed..self.filled, 0);
        self.filled -= self.consumed;
        self.consumed = 0;
        self.stream.write_all(request).await?;
        let head_len = loop {
            if let Some(end) = find_head_end(self.buf.get(..self.filled).unwrap_or_default()) {
                break end;
            }
            if self.filled >= MAX_HEAD_BYTES {
                return Err(invalid("response head too long"));
            }
            self.read_more().await?;
        };
        let head = self.buf.get(..head_len).unwrap_or_default();
        let (status, body_len) = parse_head(head)?;
        let wire_len = head_len + body_len;
        while self.filled < wire_len {
            self.read_more().await?;
        }
        self.consumed = wire_len;
        Ok(Response {
            status,
            head: self.buf.get(..head_len).unwrap_or_default(),
            body: self.buf.get(head_len..wire_len).unwrap_or_default(),
            wire_len,
        })
    }

    async fn read_more(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let spare = self.buf.get_mut(self.filled..).unwrap_or_default();
        let n = self.stream.read(spare).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.filled += n;
        Ok(())
    }
}

/// The length of the head including its blank line, once all of it has arrived.
fn find_head_end(data: &[u8]) -> Option<usize> {
    data.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Status code and body length. Only `Content-Length` framing is supported: axum sets
/// it on every fixed body, and a chunked response would be a surprise worth failing on.
fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut body_len = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value
                .trim()
                .parse()
                .map_err(|_| invalid("bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked responses are not supported"));
        }
    }
    Ok((status, body_len))
}

/// A complete request with keep-alive (the HTTP/1.1 default) and no body.
pub fn get(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// A complete `POST` of a JSON body.
pub fn post_json(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_framed_by_content_length() {
        let head =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 17\r\n\r\n";
        assert_eq!(find_head_end(head), Some(head.len()));
        assert_eq!(parse_head(head).unwrap(), (200, 17));
        let no_body = b"HTTP/1.1 204 No Content\r\nx-auth-user: a\r\n\r\n";
        assert_eq!(parse_head(no_body).unwrap(), (204, 0));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
