//! HTTP/1.1 to one API server, plain or TLS: one connection per plugin call,
//! kept alive and reused for each request of that call (a GET of the pod,
//! the NADs, the status patch, the Events), with a bounded time per request
//! so an API server that is down or slow gives CNI error 11 instead of a
//! hang. Requests that do not depend on each other's answers are pipelined:
//! written back to back, their answers read after, in order (HTTP/1.1; the
//! API server, Go's net/http, serves them one after another). Writing and
//! reading are two steps ([`Transport::send`], [`Sent::answers`]): ADD does
//! its local work (the pod's netns, its files, the cache entry) while the server
//! answers. A reused connection the server closed meanwhile is replaced
//! once, before any answer was read; requests a server left unanswered (it
//! closed after an answer) are sent again on a new connection. ADD starts
//! its connection ([`Transport::warm`]) as soon as it has read its config:
//! a non-blocking TCP connect, or over TLS a thread doing the whole
//! handshake.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};

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
    /// A connection being opened ahead of the first request, since when.
    warming: Mutex<Option<(Instant, Warming)>>,
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

/// One request of a pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: Option<(&'a str, &'a [u8])>,
}

/// One request of a pipeline, ready to write.
struct Encoded {
    method: String,
    path: String,
    bytes: Vec<u8>,
}

/// A request's answer (`Ok((status, body))` for any HTTP answer), or why
/// there is none.
pub struct Answer {
    pub method: String,
    pub path: String,
    pub got: Result<(u16, Vec<u8>), KubeError>,
}

/// Requests written on a connection and their answers not yet read
/// ([`Transport::send`]). Dropped unread, its connection is closed: the
/// next request opens a new one.
pub struct Sent<'t> {
    transport: &'t Transport,
    reqs: Vec<Encoded>,
    deadline: Instant,
    /// The kept connection, until a write takes it.
    kept: Option<Stream>,
    new_left: usize,
    /// An answer (or why there is none) for each request answered so far.
    out: Vec<Result<(u16, Vec<u8>), KubeError>>,
    /// The connection the unanswered requests were written on, and whether
    /// it was a kept (or warm) one.
    written: Option<(Stream, bool)>,
    /// When [`Transport::send`] returned.
    sent_at: Instant,
}

impl Sent<'_> {
    /// Every request not answered yet ends with `why`.
    fn give_up(&mut self, why: &str) {
        let t = self.transport;
        let rest = &self.reqs[self.out.len()..];
        self.out
            .extend(rest.iter().map(|r| Err(t.failed(&r.method, &r.path, why))));
    }

    /// Write the unanswered requests on the kept connection or a new one.
    /// A kept connection the server had dropped fails the write: once more,
    /// on a new one.
    fn write(&mut self) {
        while self.out.len() < self.reqs.len() {
            let (mut stream, reused) = match self.kept.take() {
                Some(s) => (s, true),
                None if self.new_left == 0 => {
                    return self.give_up("the server keeps closing the connection");
                }
                // A warm connection may have waited long (the lock, the
                // delegates): one the server dropped meanwhile is replaced
                // as a kept one is.
                None => match self.transport.new_stream(self.deadline) {
                    Ok((s, warm)) => {
                        self.new_left -= 1;
                        (s, warm)
                    }
                    Err(e) => return self.give_up(&e.to_string()),
                },
            };
            let bytes: Vec<u8> = self.reqs[self.out.len()..]
                .iter()
                .flat_map(|r| r.bytes.iter().copied())
                .collect();
            match write_requests(&mut stream, &bytes, self.deadline) {
                Ok(()) => {
                    self.written = Some((stream, reused));
                    return;
                }
                Err(_) if reused => {}
                Err(e) => return self.give_up(&e),
            }
        }
    }

    /// The answers, in order: read off the connection they were written on;
    /// requests a server left unanswered (it closed after an answer) are
    /// sent again on a new connection.
    pub fn answers(mut self) -> Vec<Answer> {
        // The bound is on the request, connect and write included; what the
        // caller did between the write and now (ADD's netns and files) does
        // not count against it.
        self.deadline += self.sent_at.elapsed();
        while let Some((mut stream, reused)) = self.written.take() {
            let first = self.out.len();
            let (answers, end) = read_answers(&mut stream, self.reqs.len() - first, self.deadline);
            let got = answers.len();
            let t = self.transport;
            for (r, raw) in self.reqs[first..].iter().zip(answers) {
                self.out.push(
                    parse_response(&raw)
                        .ok_or_else(|| t.failed(&r.method, &r.path, "malformed HTTP response")),
                );
            }
            match end {
                End::Open => *lock(&t.conn) = Some(stream),
                // Closed after some answers: the rest go again on a new
                // connection (a server that says `Connection: close` serves
                // nothing after it).
                End::Closed if got > 0 || reused => self.write(),
                End::Closed => self.give_up("connection closed without an answer"),
                // A kept connection the server had dropped: once more, new.
                End::Failed(_) if got == 0 && reused => self.write(),
                End::Failed(e) => self.give_up(&e),
            }
        }
        // No request at all: the kept connection stays.
        if let Some(k) = self.kept.take() {
            *lock(&self.transport.conn) = Some(k);
        }
        let out = std::mem::take(&mut self.out);
        self.reqs
            .into_iter()
            .zip(out)
            .map(|(r, got)| Answer {
                method: r.method,
                path: r.path,
                got,
            })
            .collect()
    }
}

/// How an exchange ended, after the answers it read.
enum End {
    /// The connection can carry the next requests.
    Open,
    /// The server closed it (after `Connection: close`, or quietly).
    Closed,
    /// An I/O error, a timeout or a malformed stream.
    Failed(String),
}

impl Transport {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Transport {
        Transport {
            endpoint,
            timeout,
            conn: Mutex::new(None),
            warming: Mutex::new(None),
            opened: Default::default(),
        }
    }

    /// How many connections this transport opened.
    pub fn connections_opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn unavailable(&self, reason: String) -> KubeError {
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
        let req = Request { method, path, body };
        self.send(&[req])
            .answers()
            .pop()
            .map(|a| a.got)
            .unwrap_or_else(|| Err(self.unavailable(format!("{method} {path}: no answer"))))
    }

    /// Requests that do not depend on each other, pipelined on the kept
    /// connection: written now, their answers read by [`Sent::answers`] (an
    /// answer, or the reason there is none, for each, in order). What the
    /// caller does in between overlaps the server's work and the round trip.
    /// The bound is one request's: the answers come back to back.
    pub fn send(&self, reqs: &[Request<'_>]) -> Sent<'_> {
        let mut sent = Sent {
            transport: self,
            reqs: reqs
                .iter()
                .map(|r| Encoded {
                    method: r.method.to_string(),
                    path: r.path.to_string(),
                    bytes: self.encode(r.method, r.path, r.body),
                })
                .collect(),
            deadline: Instant::now() + self.timeout,
            // Taken, not held: another request meanwhile opens a connection
            // of its own instead of waiting for this one.
            kept: lock(&self.conn).take(),
            // A server that closes after every answer needs a connection each.
            new_left: reqs.len() + 1,
            out: Vec::with_capacity(reqs.len()),
            written: None,
            sent_at: Instant::now(),
        };
        sent.write();
        sent.sent_at = Instant::now();
        sent
    }

    fn failed(&self, method: &str, path: &str, why: &str) -> KubeError {
        self.unavailable(format!("{method} {path}: {why}"))
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

    /// Start opening the connection the first request will use: over TLS on
    /// a thread of its own, handshake included; plain TCP to an address
    /// (no name to resolve) with a non-blocking connect, whose handshake the
    /// kernel completes meanwhile, no thread needed. Bounded as a request is.
    pub fn warm(&self) {
        let ep = &self.endpoint;
        let ip = ep.host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        let warming = match (&ep.tls, ip) {
            (None, Some(ip)) => match connect_started(SocketAddr::new(ip, ep.port)) {
                Some(s) => Warming::Connecting(s),
                // Refused at once: the request's own connect says why.
                None => return,
            },
            _ => {
                let (endpoint, deadline) = (ep.clone(), Instant::now() + self.timeout);
                Warming::Thread(std::thread::spawn(move || open(&endpoint, deadline, true)))
            }
        };
        *lock(&self.warming) = Some((Instant::now(), warming));
    }

    /// A new connection, and whether [`Self::warm`] opened it ahead: that
    /// one if it did, moments ago, and succeeded; else one opened now, within
    /// this request's bound. A warm connection older than [`WARM_FOR`] (ADD
    /// waited on the lock) is left to its thread: a control-plane node that
    /// went away meanwhile could leave it silently dead behind the Service's
    /// address, and waiting that out would eat this request's time.
    fn new_stream(&self, deadline: Instant) -> Result<(Stream, bool), KubeError> {
        let warmed = lock(&self.warming)
            .take()
            .filter(|(since, _)| since.elapsed() < WARM_FOR)
            .and_then(|(_, w)| match w {
                Warming::Thread(h) => h.join().ok().and_then(Result::ok),
                Warming::Connecting(s) => connected(s, deadline),
            });
        let (stream, warm) = match warmed {
            Some(s) => (s, true),
            None => (
                open(&self.endpoint, deadline, false).map_err(|e| self.unavailable(e))?,
                false,
            ),
        };
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((stream, warm))
    }
}

/// A connection being opened ahead of the first request.
enum Warming {
    /// TLS (or a name to resolve): connect and handshake on a thread.
    Thread(std::thread::JoinHandle<Result<Stream, String>>),
    /// Plain TCP: a non-blocking connect under way.
    Connecting(socket2::Socket),
}

/// How long a connection [`Transport::warm`] opened is taken for the first
/// request; past that, a new one is opened.
const WARM_FOR: Duration = Duration::from_secs(5);

/// A non-blocking connect to `addr`, started (close-on-exec: delegates
/// never inherit it); `None` if it failed at once.
fn connect_started(addr: SocketAddr) -> Option<socket2::Socket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .ok()?;
    s.set_nonblocking(true).ok()?;
    match s.connect(&addr.into()) {
        Ok(()) => Some(s),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => Some(s),
        Err(_) => None,
    }
}

/// The connect [`connect_started`] began, once established (by
/// `deadline`), as a blocking stream; `None` if it failed or is still
/// waiting: the request then connects on its own, and says why not.
fn connected(s: socket2::Socket, deadline: Instant) -> Option<Stream> {
    use std::os::fd::AsFd;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(s.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, vfplex_cni::exec::poll_timeout(left)) {
            Ok(0) => return None,
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
    // Writable: connected, or failed (the error is the socket's).
    if s.take_error().ok()?.is_some() || s.peer_addr().is_err() {
        return None;
    }
    s.set_nonblocking(false).ok()?;
    let tcp: TcpStream = s.into();
    let _ = tcp.set_nodelay(true);
    Some(Stream::Plain(tcp))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Connect to `ep` by `deadline`; with `handshake`, a TLS connection's
/// handshake is done here too (otherwise the first request's write does it).
fn open(ep: &Endpoint, deadline: Instant, handshake: bool) -> Result<Stream, String> {
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let addr = (ep.host.trim_matches(['[', ']']), ep.port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "no address".to_string())?;
    let tcp = TcpStream::connect_timeout(&addr, left()).map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    Ok(match &ep.tls {
        None => Stream::Plain(tcp),
        Some((config, name)) => {
            let mut conn = rustls::ClientConnection::new(config.clone(), name.clone())
                .map_err(|e| format!("TLS: {e}"))?;
            let mut tcp = tcp;
            while handshake && conn.is_handshaking() {
                // A peer that trickles bytes keeps each read alive: the
                // deadline is the handshake's, not each read's.
                if Instant::now() >= deadline {
                    return Err("TLS handshake: no answer in time".into());
                }
                tcp.set_write_timeout(Some(left()))
                    .and_then(|()| tcp.set_read_timeout(Some(left())))
                    .and_then(|()| conn.complete_io(&mut tcp))
                    .map_err(|e| format!("TLS handshake: {e}"))?;
            }
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
    })
}

/// Write `request` (one or several pipelined requests) within the deadline.
/// The read timeout is set too: over TLS, writing a fresh connection's first
/// request runs the handshake, which reads the server's answer.
fn write_requests(stream: &mut Stream, request: &[u8], deadline: Instant) -> Result<(), String> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream
        .tcp()
        .set_write_timeout(Some(left))
        .and_then(|()| stream.tcp().set_read_timeout(Some(left)))
        .and_then(|()| stream.write_all(request))
        .and_then(|()| stream.flush())
        .map_err(|e| e.to_string())
}

/// Read up to `count` whole answers within the deadline, in order; how the
/// connection ended. A TLS peer that closes without close_notify after
/// answering ends the answer too.
fn read_answers(stream: &mut Stream, count: usize, deadline: Instant) -> (Vec<Vec<u8>>, End) {
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut answers = Vec::new();
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        // Whole answers off the front of what was read.
        while let Some(n) = response_len(&resp) {
            let rest = resp.split_off(n);
            let answer = std::mem::replace(&mut resp, rest);
            // An interim answer (100 Continue, 103 Early Hints) comes before
            // the request's own: it answers nothing.
            if interim(&answer) {
                continue;
            }
            let close = closes(&answer);
            answers.push(answer);
            if close {
                return (answers, End::Closed);
            }
            if answers.len() == count {
                // Bytes past the last answer belong to no request: a
                // connection holding them is not kept.
                if !resp.is_empty() {
                    return (answers, End::Closed);
                }
                return (answers, End::Open);
            }
        }
        if Instant::now() >= deadline {
            return (answers, End::Failed("no complete answer in time".into()));
        }
        // Each read may wait what is left of the budget; the loop checks the deadline.
        if let Err(e) = stream.tcp().set_read_timeout(Some(left())) {
            return (answers, End::Failed(e.to_string()));
        }
        match stream.read(&mut buf) {
            Ok(0) if resp.is_empty() => return (answers, End::Closed),
            // An answer without a length, ended by the close.
            Ok(0) => {
                answers.push(resp);
                return (answers, End::Closed);
            }
            Ok(n) => resp.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The read timeout (EAGAIN on a socket): the deadline says so.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !resp.is_empty() => {
                answers.push(resp);
                return (answers, End::Closed);
            }
            Err(e) => return (answers, End::Failed(e.to_string())),
        }
    }
}

/// Whether `raw` is an interim (1xx) answer, one more answer to the same
/// request following it (101 Switching Protocols is final: never asked for).
fn interim(raw: &[u8]) -> bool {
    let status = raw
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    matches!(status, Some(100..=199)) && status != Some(101)
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
    response_len(raw).is_some()
}

/// The length of the whole response at the front of `raw` (more pipelined
/// answers may follow it), once it is all there. A response without a
/// length ends with the connection: not before.
#[doc(hidden)] // public for the fuzz target
pub fn response_len(raw: &[u8]) -> Option<usize> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let start = split + 4;
    let body = &raw[start..];
    // 1xx, 204 and 304 answers have no body.
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(start);
    }
    for line in head.split("\r\n") {
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return chunked_len(body).map(|n| start + n);
        }
    }
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            let n: usize = v.trim().parse().ok()?;
            // Lazily: a length near usize::MAX must not overflow the sum.
            return (body.len() >= n).then(|| start + n);
        }
    }
    None
}

/// The length of a chunked body through its last chunk and trailers.
fn chunked_len(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let eol = body.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let size_hex = std::str::from_utf8(&body[at..at + eol])
            .ok()?
            .split(';')
            .next()?
            .trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        at += eol + 2;
        if size == 0 {
            // Trailers (usually none), then the empty line.
            loop {
                let eol = body.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
                at += eol + 2;
                if eol == 0 {
                    return Some(at);
                }
            }
        }
        at = at.checked_add(size)?.checked_add(2)?;
        if body.len() < at {
            return None;
        }
    }
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
