//! A server with a TLS listener, for the tests that need one.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use super::ServerProcess;

/// A server with a TLS listener, and a client configuration that trusts its certificate.
pub struct TlsServer {
    pub server: ServerProcess,
    pub tls_addr: SocketAddr,
    pub connector: tokio_rustls::TlsConnector,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    pub fn start(envs: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, certified.cert.pem()).unwrap();
        std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
        let mut all_envs = vec![
            ("LINECHAT_TLS_CERT", cert_path.to_str().unwrap()),
            ("LINECHAT_TLS_KEY", key_path.to_str().unwrap()),
        ];
        all_envs.extend_from_slice(envs);
        let server = ServerProcess::start_with(&["--tls-addr", "127.0.0.1:0"], &all_envs);
        let line = server.wait_for_log("TLS listening on ");
        let tls_addr = line.rsplit("TLS listening on ").next().unwrap().trim();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            server,
            tls_addr: tls_addr.parse().unwrap(),
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            _dir: dir,
        }
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
