//! The optional TLS listener's configuration: rustls with the ring provider only, and PEM
//! files read through `rustls-pki-types` (`rustls-pemfile` is unmaintained).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_addr is set but tls_cert or tls_key is missing")]
    MissingFiles,
    #[error("cannot read {path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("bad TLS certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the acceptor from a PEM certificate chain and a PEM private key.
pub(super) fn acceptor(cert: Option<&Path>, key: Option<&Path>) -> Result<TlsAcceptor, TlsError> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err(TlsError::MissingFiles);
    };
    let pem_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Pem { path, source }
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(pem_error(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
