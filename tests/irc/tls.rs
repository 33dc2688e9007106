//! The TLS IRC listener (`irc_tls_addr`): IRC inside TLS, in the same chat as the line port.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::tls::Tls;
use crate::support::{PATIENCE, Server, TestServer};

#[tokio::test]
async fn the_tls_listener_speaks_irc_in_the_same_chat() {
    let tls = Tls::new();
    let server = TestServer::with(|settings| {
        tls.configure(settings);
        settings.irc_tls_addr = Some("127.0.0.1:0".into());
        settings.irc_server_name = Some("irc.test".into());
    });
    let mut alice = server.guest("alice").await;
    let tcp = TcpStream::connect(server.irc_tls_addr.expect("a TLS IRC listener"))
        .await
        .unwrap();
    let (read, mut write) = tokio::io::split(tls.connect(tcp).await);
    let mut lines = BufReader::new(read).lines();
    let mut next = async || {
        tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("the connection stays open")
    };
    write
        .write_all(b"NICK bob\r\nUSER bob 0 * :Bob\r\n")
        .await
        .unwrap();
    let welcome = next().await;
    assert!(welcome.starts_with(":irc.test 001 bob "), "{welcome}");
    alice.expect("NOTICE ONLINE bob").await;
    write
        .write_all(b"PRIVMSG alice :hello over TLS\r\n")
        .await
        .unwrap();
    alice.expect("PM bob hello over TLS").await;
    alice.check("PM bob and back", "OK PM bob").await;
    loop {
        if next().await == ":alice!alice@linechat PRIVMSG bob :and back" {
            break;
        }
    }
}
