//! Serving a router over plain HTTP or TLS (rustls), with graceful shutdown: on the signal, stop
//! accepting, let in-flight requests finish (up to a grace period), return.
//!
//! With TLS, a client certificate verified against `--tls-client-ca` is put in each request's
//! extensions as a [`ClientIdentity`] (its SHA-256 fingerprint), which the auth layer may accept
//! in place of a token, as kube-apiserver's webhook kubeconfig can present either.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auditlake_query_api::ClientIdentity;
use auditlake_query_api::connection::FirstByteWithin;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// In-flight requests get this long to finish after the shutdown signal.
const GRACE: Duration = Duration::from_secs(30);
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A loaded TLS configuration.
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    verifies_clients: bool,
}

impl Tls {
    /// Loads the certificate chain and key, and the client CA if given.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<Self> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read --tls-cert {}", cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("--tls-cert {} is not PEM certificates", cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!("--tls-cert {} holds no certificate", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
            format!(
                "cannot read a PEM private key from --tls-key {}",
                key.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("cannot read --tls-client-ca {}", ca.display()))?
                {
                    roots
                        .add(c.with_context(|| format!("--tls-client-ca {}", ca.display()))?)
                        .with_context(|| format!("--tls-client-ca {}", ca.display()))?;
                }
                // Certificates are optional (investigators use tokens), but one presented must
                // verify.
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .context("--tls-client-ca")?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .context("--tls-cert and --tls-key do not form a usable pair")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            verifies_clients: client_ca.is_some(),
        })
    }

    /// Whether client certificates are verified.
    pub fn verifies_clients(&self) -> bool {
        self.verifies_clients
    }

    /// The same certificate for the PostgreSQL protocol, whose clients ask for TLS in the
    /// protocol itself and name it `postgresql` in ALPN (libpq 17) or not at all.
    pub fn postgres_acceptor(&self) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }

    /// The same certificate for Arrow Flight SQL, gRPC over HTTP/2, whose clients insist on
    /// `h2` in ALPN.
    pub fn flight_acceptor(&self) -> TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A client that has not sent a request's headers by then (a slowloris, a connection left
    /// open between requests) is disconnected.
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains; over TLS when `tls` is
/// given. Every connection holds one of `limits.max_connections` places and is dropped when
/// its client sends no request headers within `limits.header_timeout` (the webhook bounds the
/// time a body may take itself), so slow and idle clients cannot hold memory or descriptors.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Tls>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let acceptor = tls.map(|tls| TlsAcceptor::from(Arc::clone(&tls.config)));
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => place.context("connection places")?,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _place = place;
            let Some(acceptor) = acceptor else {
                return connection(tcp, app, peer, None, limits, watcher).await;
            };
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| ClientIdentity {
                    subject: format!("sha256:{}", hex(&Sha256::digest(c.as_ref()))),
                });
            connection(stream, app, peer, identity, limits, watcher).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the grace period were dropped");
    }
    Ok(())
}

/// Serves one connection of HTTP/1.1 or HTTP/2 with `app` until it ends (or the shutdown's
/// grace ends it), each request carrying the peer's address and its verified client
/// certificate.
async fn connection<I>(
    io: I,
    app: Router,
    peer: SocketAddr,
    identity: Option<ClientIdentity>,
    limits: ConnectionLimits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::service_fn(
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            if let Some(id) = &identity {
                request.extensions_mut().insert(id.clone());
            }
            app.clone().oneshot(request.map(axum::body::Body::new))
        },
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let io = FirstByteWithin::new(io, limits.header_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
