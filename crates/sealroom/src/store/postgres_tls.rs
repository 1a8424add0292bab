//! TLS for PostgreSQL connections through rustls (with aws-lc-rs, the one crypto provider of the
//! whole build) and the platform's certificate verifier. Whether TLS is used follows the URL's
//! `sslmode` (`disable`, `prefer`, `require`), as with libpq.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// Makes TLS connections for tokio-postgres.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl MakeRustls {
    /// Verifies servers with the platform's trust store.
    pub fn with_platform_verifier() -> Result<MakeRustls, rustls::Error> {
        use rustls_platform_verifier::ConfigVerifierExt;
        Ok(MakeRustls { config: Arc::new(ClientConfig::with_platform_verifier()?) })
    }
}

pub struct RustlsConnect {
    hostname: String,
    connector: tokio_rustls::TlsConnector,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, hostname: &str) -> Result<RustlsConnect, io::Error> {
        Ok(RustlsConnect {
            hostname: hostname.to_owned(),
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
        })
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = ServerName::try_from(self.hostname)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
            Ok(RustlsStream(self.connector.connect(name, stream).await?))
        })
    }
}

/// A TLS stream to the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(context, buffer)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(context)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No channel binding: SCRAM authentication works without it (SCRAM-SHA-256-PLUS is not
    /// offered), and computing it would need an X.509 parser we do not otherwise carry.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
