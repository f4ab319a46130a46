//! HTTP/1.1 to one API server, plain or TLS: one connection per plugin call,
//! kept alive and reused for each request of that call (a GET of the pod,
//! GETs of its NADs, the status patch, the Events), with a bounded time per
//! request so an API server that is down or slow gives CNI error 11 instead
//! of a hang. A reused connection the server closed meanwhile is replaced
//! once, before any answer was read.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::kubeconfig::Endpoint;
use super::KubeError;

/// A connection: TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// The way to one API server, and the connection kept open to it.
pub struct Transport {
    pub endpoint: Endpoint,
    timeout: Duration,
    conn: Mutex<Option<Stream>>,
    /// Connections opened so far (tests, benchmarks).
    opened: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How an exchange went wrong: before any byte of the answer (a stale
/// kept-alive connection can be replaced) or after.
enum Failed {
    Unanswered(String),
    Answered(String),
}

impl Transport {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Transport {
        Transport {
            endpoint,
            timeout,
            conn: Mutex::new(None),
            opened: Default::default(),
        }
    }

    /// How many connections this transport opened.
    pub fn connections_opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn unavailable(&self, reason: String) -> KubeError {
        KubeError::Unavailable {
            server: self.endpoint.server(),
            reason,
        }
    }

    /// One request; `Ok((status, body))` for any HTTP answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<(u16, Vec<u8>), KubeError> {
        let deadline = Instant::now() + self.timeout;
        let bytes = self.encode(method, path, body);
        let mut slot = match self.conn.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let reused = slot.is_some();
        let mut stream = match slot.take() {
            Some(s) => s,
            None => self.connect(deadline)?,
        };
        let mut answer = exchange(&mut stream, &bytes, deadline);
        if reused && matches!(answer, Err(Failed::Unanswered(_))) {
            stream = self.connect(deadline)?;
            answer = exchange(&mut stream, &bytes, deadline);
        }
        let (raw, keep) = answer.map_err(|f| match f {
            Failed::Unanswered(e) | Failed::Answered(e) => {
                self.unavailable(format!("{method} {path}: {e}"))
            }
        })?;
        if keep {
            *slot = Some(stream);
        }
        parse_response(&raw)
            .ok_or_else(|| self.unavailable(format!("{method} {path}: malformed HTTP response")))
    }

    fn encode(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Vec<u8> {
        let ep = &self.endpoint;
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/json\r\nUser-Agent: vfplex\r\n",
            ep.base, ep.host, ep.port
        );
        if let Some(t) = &ep.token.0 {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some((ct, b)) = body {
            req.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some((_, b)) = body {
            bytes.extend_from_slice(b);
        }
        bytes
    }

    fn connect(&self, deadline: Instant) -> Result<Stream, KubeError> {
        let ep = &self.endpoint;
        let addr = (ep.host.trim_matches(['[', ']']), ep.port)
            .to_socket_addrs()
            .map_err(|e| self.unavailable(e.to_string()))?
            .next()
            .ok_or_else(|| self.unavailable("no address".into()))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let tcp = TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
            .map_err(|e| self.unavailable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(match &ep.tls {
            None => Stream::Plain(tcp),
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| self.unavailable(format!("TLS: {e}")))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        })
    }
}

/// Send a request and read the whole answer within the deadline; whether
/// the connection can carry the next request too. A TLS peer that closes
/// without close_notify after answering ends the answer too.
fn exchange(
    stream: &mut Stream,
    request: &[u8],
    deadline: Instant,
) -> Result<(Vec<u8>, bool), Failed> {
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let io = |e: std::io::Error| Failed::Unanswered(e.to_string());
    // Both before the first write: over TLS, writing a fresh connection's
    // first request runs the handshake, which reads the server's answer.
    stream.tcp().set_write_timeout(Some(left())).map_err(io)?;
    stream.tcp().set_read_timeout(Some(left())).map_err(io)?;
    stream.write_all(request).map_err(io)?;
    stream.flush().map_err(io)?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        // Each read may wait what is left of the budget; the loop checks the deadline.
        let failed = |e: String, resp: &[u8]| match resp.is_empty() {
            true => Failed::Unanswered(e),
            false => Failed::Answered(e),
        };
        stream
            .tcp()
            .set_read_timeout(Some(left()))
            .map_err(|e| failed(e.to_string(), &resp))?;
        match stream.read(&mut buf) {
            Ok(0) if resp.is_empty() => return Err(Failed::Unanswered("connection closed".into())),
            Ok(0) => return Ok((resp, false)),
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if response_complete(&resp) {
                    let keep = !closes(&resp);
                    return Ok((resp, keep));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !resp.is_empty() => {
                return Ok((resp, false))
            }
            Err(e) => return Err(failed(e.to_string(), &resp)),
        }
        if Instant::now() >= deadline {
            return Err(failed("no complete answer in time".into(), &resp));
        }
    }
}

/// Whether the server said it closes the connection after this answer.
fn closes(raw: &[u8]) -> bool {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end])
        .to_ascii_lowercase()
        .split("\r\n")
        .any(|l| l.starts_with("connection:") && l.contains("close"))
}

/// Whether `raw` holds a whole response: headers plus Content-Length bytes, or
/// a chunked body through its last chunk.
#[doc(hidden)] // public for the fuzz target
pub fn response_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return parse_response(raw).is_some();
        }
    }
    false
}

/// Status code and body of an HTTP/1.1 response (Content-Length or chunked).
#[doc(hidden)] // public for the fuzz target
pub fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_hex = std::str::from_utf8(&rest[..eol])
            .ok()?
            .split(';')
            .next()?
            .trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(r), Some((200, b"{}".to_vec())));
        let r = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Some((201, b"{\"a\":1}".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
        ));
        assert!(closes(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"));
        assert!(!closes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    }
}
