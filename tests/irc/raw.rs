//! A hand-driven IRC connection: lines out, lines in, with patience.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::support::{Client, PATIENCE, Server, TestServer};

/// A server with an IRC listener on a free port, named `irc.test`.
pub fn server() -> TestServer {
    server_with(|_| {})
}

/// The same, with other settings changed by `configure`.
pub fn server_with(configure: impl FnOnce(&mut linechat::settings::Settings)) -> TestServer {
    TestServer::with(|settings| {
        settings.irc_addr = Some("127.0.0.1:0".into());
        settings.irc_server_name = Some("irc.test".into());
        configure(settings);
    })
}

/// A line-protocol guest `bob` who created the room `dev`, and an IRC guest `ann` who joined
/// `#dev`: both have read everything up to `ann`'s join.
pub async fn bob_and_ann_in_dev(server: &TestServer) -> (Client, Raw) {
    let mut bob = server.guest("bob").await;
    bob.create_room("dev", &mut []).await;
    let mut ann = Raw::guest(server, "ann").await;
    bob.expect("NOTICE ONLINE ann").await;
    ann.send("JOIN #dev").await;
    ann.until(" 366 ann #dev ").await;
    bob.expect("JR dev ann").await;
    (bob, ann)
}

pub struct Raw {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Raw {
    pub async fn connect(server: &TestServer) -> Self {
        let addr: SocketAddr = server.irc_addr.expect("an IRC listener");
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            read: BufReader::new(read),
            write,
        }
    }

    /// A connection registered as `nick` (a guest), its welcome read up to the end of
    /// `#global`'s names.
    pub async fn guest(server: &TestServer, nick: &str) -> Self {
        let mut irc = Self::connect(server).await;
        irc.send(&format!("NICK {nick}")).await;
        irc.send(&format!("USER {nick} 0 * :{nick}")).await;
        irc.until(" 366 ").await;
        irc
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// The next line, without its CR LF; "" at the end of the connection.
    pub async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, self.read.read_line(&mut line))
            .await
            .expect("a line in time")
            .unwrap();
        assert!(
            line.len() <= 512,
            "an IRC line of {} bytes: {line:?}",
            line.len()
        );
        assert!(line.is_empty() || line.ends_with("\r\n"), "{line:?}");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    pub async fn expect(&mut self, expected: &str) {
        assert_eq!(self.line().await, expected);
    }

    /// Reads up to the first line containing `part`, and returns it.
    pub async fn until(&mut self, part: &str) -> String {
        let mut seen = Vec::new();
        loop {
            let line = self.line().await;
            assert!(!line.is_empty(), "closed before {part:?}; read {seen:?}");
            if line.contains(part) {
                return line;
            }
            seen.push(line);
        }
    }

    /// Sends a `PING` and reads up to its `PONG`: every line sent before was answered.
    pub async fn caught_up(&mut self) -> Vec<String> {
        self.send("PING :caught-up").await;
        let mut seen = Vec::new();
        loop {
            let line = self.line().await;
            if line.ends_with("PONG irc.test :caught-up") {
                return seen;
            }
            assert!(!line.is_empty(), "closed; read {seen:?}");
            seen.push(line);
        }
    }

    /// Everything until the server closes the connection.
    pub async fn until_closed(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                return seen;
            }
            seen.push(line);
        }
    }
}
