//! TLS to PostgreSQL with rustls (aws-lc-rs), following libpq's `sslmode` and `sslrootcert`
//! URL parameters:
//!
//! | `sslmode` | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | when the server offers TLS | no (as `verify-ca` with `sslrootcert`) |
//! | `require` | always | no (as `verify-ca` with `sslrootcert`) |
//! | `verify-ca` | always | chain to a trusted root |
//! | `verify-full` | always | chain, and the certificate names the host |
//!
//! Trusted roots: the PEM file `sslrootcert` names, or the system's roots when it is missing or
//! `system`. Client certificates (`sslcert`, `sslkey`) are not supported. Channel binding is not
//! offered (SCRAM logins use `SCRAM-SHA-256`, as libpq does without `channel_binding=require`).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::persistence::PersistenceError;

/// What a connection asks of TLS (`sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it.
    Prefer,
    /// Always encrypt.
    Require,
    /// Always encrypt; the chain must lead to a trusted root.
    VerifyCa,
    /// [`TlsMode::VerifyCa`], and the certificate must name the host.
    VerifyFull,
}

impl TlsMode {
    /// Parses an `sslmode` value.
    pub(crate) fn parse(value: &str) -> Result<TlsMode, PersistenceError> {
        match value {
            "disable" => Ok(TlsMode::Disable),
            "allow" | "prefer" => Ok(TlsMode::Prefer),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(PersistenceError(format!(
                "unknown PostgreSQL sslmode \"{other}\": use disable, prefer, require, verify-ca \
                 or verify-full"
            ))),
        }
    }

    /// The driver's setting: whether TLS is attempted and whether it is required.
    pub(crate) fn driver_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }
}

/// Where trusted roots come from (`sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RootCerts {
    /// The operating system's trust store.
    System,
    /// A PEM file of one or more certificates.
    File(PathBuf),
}

impl RootCerts {
    /// Parses an `sslrootcert` value.
    pub(crate) fn parse(value: &str) -> RootCerts {
        if value == "system" {
            RootCerts::System
        } else {
            RootCerts::File(PathBuf::from(value))
        }
    }

    fn load(&self) -> Result<RootCertStore, PersistenceError> {
        let mut store = RootCertStore::empty();
        match self {
            RootCerts::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(PersistenceError(
                        "sslrootcert=system: no trusted root certificates found on this system; \
                         install ca-certificates or name a PEM file"
                            .to_owned(),
                    ));
                }
            }
            RootCerts::File(path) => {
                let shown = path.display();
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect())
                    .map_err(|e| {
                        PersistenceError(format!("cannot read sslrootcert {shown}: {e}"))
                    })?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(PersistenceError(format!(
                        "sslrootcert {shown} holds no usable certificate (expected PEM)"
                    )));
                }
            }
        }
        Ok(store)
    }
}

/// The TLS connector every PostgreSQL connection of a target uses. Built once per target (the
/// roots are read at parse time, so a missing file is a configuration error up front).
#[derive(Clone)]
pub(crate) struct PgTls {
    config: Option<Arc<ClientConfig>>,
}

impl PgTls {
    /// The connector for `mode`, checking against `roots` when given (and for the verifying
    /// modes, against the system roots otherwise).
    pub(crate) fn new(mode: TlsMode, roots: Option<&RootCerts>) -> Result<PgTls, PersistenceError> {
        if mode == TlsMode::Disable {
            return Ok(PgTls { config: None });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let check = match (mode, roots) {
            (TlsMode::VerifyFull, _) => Check::Full,
            (TlsMode::VerifyCa, _) | (TlsMode::Prefer | TlsMode::Require, Some(_)) => Check::Chain,
            _ => Check::Nothing,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(AnyCertificate(provider.clone())),
            Check::Chain | Check::Full => {
                let store = roots.unwrap_or(&RootCerts::System).load()?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()
                        .map_err(|e| PersistenceError(format!("cannot use the TLS roots: {e}")))?;
                Arc::new(Verifier {
                    webpki,
                    check_name: check == Check::Full,
                })
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PersistenceError(format!("cannot set up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(PgTls {
            config: Some(Arc::new(config)),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    Full,
}

/// Checks the chain, and the host name when `check_name`.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // The chain is checked before the name: a name mismatch means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Accepts any certificate (libpq's `prefer` and `require`): the connection is encrypted, and
/// the handshake signature still has to match the certificate presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PgTlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("\"{domain}\" is not a host name TLS can check: {e}"),
            )
        })?;
        Ok(PgTlsConnect {
            config: self.config.clone(),
            name,
        })
    }
}

/// One connection's TLS handshake.
pub(crate) struct PgTlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Some(config) = self.config else {
                // Only reachable with sslmode=disable, where the driver never asks.
                return Err(io::Error::other("TLS is disabled (sslmode=disable)"));
            };
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(self.name, stream)
                .await?;
            Ok(PgTlsStream(Box::new(stream)))
        })
    }
}

/// A TLS-wrapped PostgreSQL socket.
pub(crate) struct PgTlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S> TlsStream for PgTlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_like_libpq() {
        assert_eq!(TlsMode::parse("verify-full").unwrap(), TlsMode::VerifyFull);
        assert_eq!(TlsMode::parse("allow").unwrap(), TlsMode::Prefer);
        let err = TlsMode::parse("verify_full").unwrap_err().0;
        assert!(err.contains("verify-full"), "{err}");
        assert_eq!(TlsMode::VerifyCa.driver_mode(), SslMode::Require);
        assert_eq!(RootCerts::parse("system"), RootCerts::System);
    }

    #[test]
    fn a_missing_or_empty_root_file_is_refused_up_front() {
        let missing = RootCerts::File("/nonexistent/root.crt".into());
        let err = PgTls::new(TlsMode::VerifyFull, Some(&missing))
            .err()
            .unwrap()
            .0;
        assert!(err.contains("/nonexistent/root.crt"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = PgTls::new(TlsMode::VerifyCa, Some(&RootCerts::File(empty)))
            .err()
            .unwrap()
            .0;
        assert!(err.contains("no usable certificate"), "{err}");
        // Not verifying needs no roots.
        assert!(PgTls::new(TlsMode::Require, None).is_ok());
    }
}
