//! A test's end of a connection: sends lines and reads them as a user of `nc` would.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::PATIENCE;

pub struct Client {
    lines: Lines<AsyncBufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    /// Connects to `addr` and reads the greeting.
    pub async fn greeted(addr: SocketAddr) -> Self {
        let mut client = Self::connect(addr).await;
        let hello = client.line().await;
        assert!(hello.starts_with("HELLO "), "greeting: {hello}");
        client
    }

    /// Connects to `addr` and logs in as guest `name`.
    pub async fn guest(addr: SocketAddr, name: &str) -> Self {
        let mut client = Self::greeted(addr).await;
        client.send(&format!("NICK {name}")).await;
        client.expect(&format!("OK NICK {name}")).await;
        client
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            lines: AsyncBufReader::new(read).lines(),
            writer,
        }
    }

    /// Sends one line; the newline is added.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Closes the sending side only (a half-close).
    pub async fn shutdown_write(&mut self) {
        self.writer.shutdown().await.expect("shutdown");
    }

    /// The next line; fails the test on timeout or end of stream.
    pub async fn line(&mut self) -> String {
        match tokio::time::timeout(PATIENCE, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!("connection closed while a line was expected"),
            Ok(Err(error)) => panic!("read failed: {error}"),
            Err(_) => panic!("no line within {PATIENCE:?}"),
        }
    }

    pub async fn expect(&mut self, expected: &str) {
        let line = self.line().await;
        assert_eq!(line, expected);
    }

    /// Expects a line starting with `prefix` and returns it.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let line = self.line().await;
        assert!(
            line.starts_with(prefix),
            "expected {prefix:?}..., got {line:?}"
        );
        line
    }

    /// Sends a command and returns the next line.
    pub async fn ask(&mut self, command: &str) -> String {
        self.send(command).await;
        self.line().await
    }

    /// Expects the server to close the connection, and returns the lines read before.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(PATIENCE, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => seen.push(line),
                Ok(Ok(None)) | Ok(Err(_)) => return seen,
                Err(_) => panic!("connection still open; lines read: {seen:?}"),
            }
        }
    }

    /// Asserts that no line arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(result) = tokio::time::timeout(wait, self.lines.next_line()).await {
            panic!("expected silence, got {result:?}");
        }
    }
}
