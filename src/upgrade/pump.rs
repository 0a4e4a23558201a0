//! Moves bytes between an upgraded connection's socket and its request and
//! response: what the client sends goes to the request body ([`Feed`]), the
//! response body goes out through the h1 codec that parsed the request.
//!
//! Nothing here is allocated per connection while it is idle: a read lands in
//! a buffer on the stack and only the bytes read are copied out, and the write
//! buffer is given back once it has been written. (actix-http's dispatcher
//! keeps an 8 KiB read and an 8 KiB write buffer for the life of the
//! connection, which is most of an idle websocket's memory.)

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Encoder;
use actix_http::body::{BoxBody, MessageBody};
use actix_http::error::PayloadError;
use actix_http::h1::{Codec, Message};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::feed::Feed;

/// The most one read takes off the socket; it is on the stack, not per connection.
const READ_CHUNK: usize = 8 * 1024;

/// How long a finished connection's shutdown may take, as actix-web's default
/// client disconnect timeout.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// The most a finished connection reads (and drops) while waiting for the
/// client to close its side; see [`Pump::run`].
const DRAIN_BYTES: usize = 256 * 1024;

/// Why a pump stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The response is complete and written.
    Done,
    /// The client closed its side (half-closed connections are refused, as
    /// the server's own dispatcher does).
    ClientClosed,
}

/// One upgraded connection: its socket, codec and the two bodies.
pub struct Pump<T> {
    pub io: T,
    pub codec: Codec,
    /// Encoded bytes not written yet; empty, with no allocation, when idle.
    pub out: BytesMut,
    pub feed: Feed,
    pub body: BoxBody,
    pub body_done: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Pump<T> {
    /// Runs until the response is written or the client goes; then shuts the
    /// socket down.
    pub async fn run(mut self) -> io::Result<End> {
        let end = poll_fn(|cx| self.poll(cx)).await;
        if let Err(e) = &end {
            self.feed.end(Some(PayloadError::Io(io::Error::new(
                e.kind(),
                e.to_string(),
            ))));
        }
        // Bytes queued before the client left are still offered to it.
        let io = &mut self.io;
        let out = &mut self.out;
        let _ = tokio::time::timeout(
            SHUTDOWN_TIMEOUT,
            poll_fn(|cx| {
                // A write that fails only ends the offer; the shutdown follows.
                if write_out(io, out, cx).is_pending() {
                    return Poll::Pending;
                }
                Pin::new(&mut *io).poll_shutdown(cx)
            }),
        )
        .await;
        if end.as_ref().is_ok_and(|e| *e == End::Done) {
            // Closing a socket with unread bytes makes the kernel send a
            // reset, which can destroy the close frame just written before
            // the client reads it (a client still sending when the session
            // closed with 3001). Read and drop what comes until the client
            // closes too, within the same time and at most DRAIN_BYTES (a
            // client streaming garbage is not owed a clean close: draining
            // such clients for a second each cost a core).
            let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut drained = 0;
            let _ = tokio::time::timeout(
                SHUTDOWN_TIMEOUT,
                poll_fn(|cx| {
                    loop {
                        let mut buf = ReadBuf::uninit(&mut storage);
                        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                                drained += buf.filled().len();
                                if drained > DRAIN_BYTES {
                                    return Poll::Ready(());
                                }
                            }
                            Poll::Ready(_) => return Poll::Ready(()),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                }),
            )
            .await;
        }
        end
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<End>> {
        loop {
            let mut progress = false;
            // Write what is queued; the body is polled again only once it is
            // out, so a slow client pushes back on the session.
            if !self.out.is_empty() {
                match write_out(&mut self.io, &mut self.out, cx) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {
                        self.out = BytesMut::new();
                        // TLS streams buffer; a flush that cannot finish now
                        // wakes us when it can.
                        if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
                            return Poll::Ready(Err(e));
                        }
                    }
                    Poll::Pending => {}
                }
            }
            if self.out.is_empty() && !self.body_done {
                match Pin::new(&mut self.body).poll_next(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        self.encode(Message::Chunk(Some(chunk)))?;
                        progress = true;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        log::debug!("upgraded response body failed: {e}");
                        return Poll::Ready(Ok(End::Done));
                    }
                    Poll::Ready(None) => {
                        self.encode(Message::Chunk(None))?;
                        self.body_done = true;
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
            if self.body_done && self.out.is_empty() {
                return Poll::Ready(Ok(End::Done));
            }
            if self.feed.wants_more(cx) {
                match self.poll_read(cx) {
                    Poll::Ready(Ok(Some(chunk))) => {
                        self.feed.push(chunk);
                        progress = true;
                    }
                    Poll::Ready(Ok(None)) => {
                        self.feed.end(Some(PayloadError::Incomplete(None)));
                        return Poll::Ready(Ok(End::ClientClosed));
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// One read into a stack buffer; `None` at end of stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut storage);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Ok(None)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(Bytes::copy_from_slice(buf.filled())))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn encode(
        &mut self,
        msg: Message<(actix_http::Response<()>, actix_http::body::BodySize)>,
    ) -> io::Result<()> {
        self.codec.encode(msg, &mut self.out)
    }

    /// Encodes the response head; the body follows from [`Pump::run`].
    pub fn start(&mut self, head: actix_http::Response<()>) -> io::Result<()> {
        let size = self.body.size();
        self.encode(Message::Item((head, size)))
    }
}

/// Writes `out` until it is empty (`Ready(Ok)`), the socket is full
/// (`Pending`) or the write fails.
fn write_out<T: AsyncWrite + Unpin>(
    io: &mut T,
    out: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        match Pin::new(&mut *io).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => out.advance(n),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}
