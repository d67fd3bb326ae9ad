//! What a client's connection may hold, the same for every listener (HTTP, PostgreSQL, Flight
//! SQL): a client that sends nothing is dropped, and a listener serves a bounded number of
//! connections at once, so slow, idle and abandoned clients cannot exhaust memory or file
//! descriptors.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection whose client must send its first byte within a time: hyper's header timeout
/// starts only once it knows the protocol, which it learns from the first bytes, so a client
/// that connects and sends nothing would otherwise be kept for ever.
pub struct FirstByteWithin<I> {
    io: I,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// The listener's place this connection holds until it is dropped.
    _place: Option<OwnedSemaphorePermit>,
}

impl<I> FirstByteWithin<I> {
    /// `io`, failing its reads once `within` passes with nothing read.
    pub fn new(io: I, within: Duration) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
            _place: None,
        }
    }

    /// Holds `place` (of a listener's bounded number) for as long as the connection lives.
    pub fn holding(mut self, place: OwnedSemaphorePermit) -> Self {
        self._place = Some(place);
        self
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByteWithin<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if let Some(deadline) = self.deadline.as_mut() {
            if read.is_ready() && buf.filled().len() > before {
                self.deadline = None;
            } else if read.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request from the client",
                )));
            }
        }
        read
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByteWithin<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<I: tonic::transport::server::Connected> tonic::transport::server::Connected
    for FirstByteWithin<I>
{
    type ConnectInfo = I::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// The connections accepted on `listener`, at most `max` at once (more wait in the kernel's
/// accept queue), each through `handshake` (TLS, say, which must finish within `within` too),
/// then required to send its first byte within `within`. Handshakes run in tasks of their own,
/// so a slow client holds up no other.
pub fn incoming<I, H, F>(
    listener: TcpListener,
    max: usize,
    within: Duration,
    handshake: H,
) -> impl futures::Stream<Item = std::io::Result<FirstByteWithin<I>>>
where
    I: Send + 'static,
    H: Fn(tokio::net::TcpStream) -> F + Send + 'static,
    F: Future<Output = std::io::Result<I>> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let places = std::sync::Arc::new(Semaphore::new(max));
    tokio::spawn(async move {
        loop {
            let Ok(place) = std::sync::Arc::clone(&places).acquire_owned().await else {
                return;
            };
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if sender.is_closed() {
                return;
            }
            let sender = sender.clone();
            let shaking = handshake(socket);
            tokio::spawn(async move {
                match tokio::time::timeout(within, shaking).await {
                    Ok(Ok(io)) => {
                        let io = FirstByteWithin::new(io, within).holding(place);
                        let _ = sender.send(Ok(io)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "handshake failed"),
                    Err(_) => tracing::debug!(%peer, "handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
