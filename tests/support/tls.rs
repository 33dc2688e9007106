//! A server with a TLS listener, for the tests that need one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use linechat::settings::Settings;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use super::TestServer;

/// A self-signed certificate for `localhost` in files a server can read, and a client
/// configuration that trusts it.
pub struct Tls {
    pub connector: tokio_rustls::TlsConnector,
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tls {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            cert,
            key,
            _dir: dir,
        }
    }

    /// Gives `settings` a TLS listener on a free port with this certificate.
    pub fn configure(&self, settings: &mut Settings) {
        settings.tls_addr = Some("127.0.0.1:0".into());
        settings.tls_cert = Some(self.cert.clone());
        settings.tls_key = Some(self.key.clone());
    }

    /// Does the TLS handshake over `tcp`.
    pub async fn connect(&self, tcp: TcpStream) -> TlsStream<TcpStream> {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio::time::timeout(super::PATIENCE, self.connector.connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake")
    }

    /// Does the TLS handshake over `tcp` and returns the lines the server sends.
    pub async fn handshake(&self, tcp: TcpStream) -> Lines<BufReader<TlsStream<TcpStream>>> {
        BufReader::new(self.connect(tcp).await).lines()
    }
}

/// A server in this process with a TLS listener, and a client configuration that trusts its
/// certificate.
pub struct TlsServer {
    pub server: TestServer,
    pub tls_addr: SocketAddr,
    pub tls: Tls,
}

impl TlsServer {
    /// A server whose settings `configure` changes, with a TLS listener besides.
    pub fn start(configure: impl FnOnce(&mut Settings)) -> Self {
        let tls = Tls::new();
        let server = TestServer::with(|settings| {
            tls.configure(settings);
            configure(settings);
        });
        let tls_addr = server.tls_addr.expect("a TLS listener");
        Self {
            server,
            tls_addr,
            tls,
        }
    }
}
