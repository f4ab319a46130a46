//! kubelet before 1.26 (grpc-go dialling a bare socket path) and gRPC C-core
//! clients send the unix socket's *path* as the HTTP/2 `:authority`, e.g.
//! `/var/lib/kubelet/device-plugins/vfplex-intel.com_x.sock`. h2, the HTTP/2
//! server under tonic, refuses a request whose authority is not a valid URI
//! authority with RST_STREAM(PROTOCOL_ERROR) — so a real kubelet 1.20 could
//! register our pools but never list them (kubernetes/kubernetes#112597,
//! hyperium/h2#487). grpc-go servers, hence the Go device plugin, accept it.
//!
//! [`AuthorityFix`] sits between each accepted connection and tonic. It reads
//! the client's byte stream as HTTP/2 frames; every header block (HEADERS plus
//! its CONTINUATIONs) is decoded with the connection's HPACK state, an
//! `:authority` that is not a valid URI authority becomes `localhost`, and the
//! block is encoded again with literals only (never the dynamic table, so the
//! server's HPACK state has nothing to fall out of step with). Every other
//! frame passes byte for byte; the server's direction is untouched.

use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PREFACE_LEN: usize = PREFACE.len();
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Every HTTP/2 peer accepts frames up to this size (SETTINGS_MAX_FRAME_SIZE's
/// initial value); re-encoded blocks are split to fit it.
const MAX_FRAME: usize = 16_384;
/// What replaces an authority h2 would refuse.
pub const REPLACEMENT: &str = "localhost";

/// The client-to-server half: frames in, frames (with fixed authorities) out.
pub struct Rewriter {
    decoder: loona_hpack::Decoder<'static>,
    input: Vec<u8>,
    preface_left: usize,
    /// A HEADERS frame waiting for its CONTINUATIONs: flags, stream, priority
    /// bytes, the block so far.
    pending: Option<(u8, u32, Vec<u8>, Vec<u8>)>,
    /// After a block that does not decode, the stream is passed on untouched:
    /// the server then fails it as it would have anyway.
    passthrough: bool,
    /// How many authorities were replaced (for tests and the log).
    pub replaced: u64,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("buffered", &self.input.len())
            .field("passthrough", &self.passthrough)
            .field("replaced", &self.replaced)
            .finish()
    }
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter {
            decoder: loona_hpack::Decoder::new(),
            input: Vec::new(),
            preface_left: PREFACE_LEN,
            pending: None,
            passthrough: false,
            replaced: 0,
        }
    }
}

/// Whether h2 takes `value` as an `:authority`.
pub fn authority_ok(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|s| http::uri::Authority::from_str(s).is_ok())
}

fn put_int(out: &mut Vec<u8>, first: u8, prefix_bits: u8, mut n: usize) {
    let max = (1usize << prefix_bits) - 1;
    if n < max {
        out.push(first | n as u8);
        return;
    }
    out.push(first | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// One header as "literal without indexing, new name", strings not Huffman
/// coded (RFC 7541 §6.2.2): nothing enters the server's dynamic table.
fn put_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    put_int(out, 0x00, 7, name.len());
    out.extend_from_slice(name);
    put_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

impl Rewriter {
    /// Take `data` from the client; append what the server should read to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.passthrough {
            out.extend_from_slice(data);
            return;
        }
        self.input.extend_from_slice(data);
        let mut at = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.input.len());
            let seen = PREFACE_LEN - self.preface_left;
            if self.input[..n] != PREFACE[seen..seen + n] {
                // Not HTTP/2: nothing to fix; the server will refuse it.
                self.passthrough = true;
            }
            out.extend_from_slice(&self.input[..n]);
            self.preface_left -= n;
            at = n;
        }
        while self.preface_left == 0 && !self.passthrough {
            let Some(head) = self.input.get(at..at + FRAME_HEADER_LEN) else {
                break;
            };
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let end = at + FRAME_HEADER_LEN + len;
            if self.input.len() < end {
                break;
            }
            if kind == HEADERS || (kind == CONTINUATION && self.pending.is_some()) {
                let frame = self.input[at..end].to_vec();
                self.header_frame(kind, flags, stream, &frame, out);
            } else {
                out.extend_from_slice(&self.input[at..end]);
            }
            at = end;
        }
        if self.passthrough {
            out.extend_from_slice(&self.input[at..]);
            self.input.clear();
            return;
        }
        self.input.drain(..at);
    }

    fn header_frame(&mut self, kind: u8, flags: u8, stream: u32, frame: &[u8], out: &mut Vec<u8>) {
        let payload = &frame[FRAME_HEADER_LEN..];
        if kind == HEADERS {
            let mut body = payload;
            if flags & PADDED != 0 {
                let pad = usize::from(*body.first().unwrap_or(&0));
                if body.len() < 1 + pad {
                    return self.give_up(frame, out);
                }
                body = &body[1..body.len() - pad];
            }
            let mut priority = Vec::new();
            if flags & PRIORITY != 0 {
                if body.len() < 5 {
                    return self.give_up(frame, out);
                }
                priority = body[..5].to_vec();
                body = &body[5..];
            }
            self.pending = Some((flags, stream, priority, body.to_vec()));
        } else if let Some(p) = &mut self.pending {
            p.3.extend_from_slice(payload);
        }
        if flags & END_HEADERS == 0 {
            return;
        }
        let Some((flags, stream, priority, block)) = self.pending.take() else {
            return;
        };
        let mut fields = Vec::new();
        let decoded = self.decoder.decode_with_cb(&block, |n, v| {
            fields.push((n.into_owned(), v.into_owned()));
        });
        if decoded.is_err() {
            tracing::warn!(
                "HTTP/2 header block that does not decode; passing the connection through"
            );
            return self.give_up_block(flags, stream, &priority, &block, out);
        }
        let mut encoded = Vec::with_capacity(block.len() + 32);
        for (name, value) in &fields {
            if name.as_slice() == b":authority" && !authority_ok(value) {
                self.replaced += 1;
                tracing::debug!(
                    "HTTP/2 :authority {:?} replaced by {REPLACEMENT}",
                    String::from_utf8_lossy(value)
                );
                put_literal(&mut encoded, name, REPLACEMENT.as_bytes());
            } else {
                put_literal(&mut encoded, name, value);
            }
        }
        emit_block(flags, stream, &priority, &encoded, out);
    }

    /// Pass on a frame as it came, and everything after it.
    fn give_up(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(frame);
        self.passthrough = true;
    }

    /// Pass on an undecodable block as one frame, and everything after it.
    fn give_up_block(
        &mut self,
        flags: u8,
        stream: u32,
        priority: &[u8],
        block: &[u8],
        out: &mut Vec<u8>,
    ) {
        emit_block(flags, stream, priority, block, out);
        self.passthrough = true;
    }
}

/// A header block as HEADERS (with its priority fields, no padding) plus as
/// many CONTINUATIONs as [`MAX_FRAME`] needs.
fn emit_block(flags: u8, stream: u32, priority: &[u8], block: &[u8], out: &mut Vec<u8>) {
    let keep = flags & (END_STREAM | PRIORITY);
    let first = (MAX_FRAME - priority.len()).min(block.len());
    let (head, mut rest) = block.split_at(first);
    let end = if rest.is_empty() { END_HEADERS } else { 0 };
    frame_header(
        out,
        priority.len() + head.len(),
        HEADERS,
        keep | end,
        stream,
    );
    out.extend_from_slice(priority);
    out.extend_from_slice(head);
    while !rest.is_empty() {
        let n = MAX_FRAME.min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        let end = if tail.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), CONTINUATION, end, stream);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

/// A connection whose client-to-server bytes go through a [`Rewriter`].
#[derive(Debug)]
pub struct AuthorityFix<S> {
    inner: S,
    rewriter: Rewriter,
    ready: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            rewriter: Rewriter::default(),
            ready: Vec::new(),
            pos: 0,
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.ready.len() {
                let n = (this.ready.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.ready[this.pos..this.pos + n]);
                this.pos += n;
                if this.pos == this.ready.len() {
                    this.ready.clear();
                    this.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut raw = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    this.eof = true;
                    // A partial frame at EOF goes on as it is.
                    this.ready.append(&mut this.rewriter.input);
                }
                Poll::Ready(Ok(())) => {
                    let mut out = std::mem::take(&mut this.ready);
                    this.rewriter.feed(rb.filled(), &mut out);
                    this.ready = out;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected
    for AuthorityFix<S>
{
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The accepted connections of `listener`, each behind an [`AuthorityFix`]:
/// what a pool's gRPC server serves.
pub fn incoming(
    listener: tokio::net::UnixListener,
) -> impl tokio_stream::Stream<Item = io::Result<AuthorityFix<tokio::net::UnixStream>>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::UnixListenerStream::new(listener).map(|c| c.map(AuthorityFix::new))
}

#[cfg(test)]
mod tests;
