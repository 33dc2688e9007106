//! Every way the server closes an IRC connection says why in `ERROR`, whether the client
//! has registered or not: the login deadline, flood control, shutdown, a take-over.

use base64::Engine;

use super::raw::{Raw, server, server_with};
use crate::support::{Server, TestServer};

/// An IRC connection logged in to `name`'s account by SASL PLAIN that has not sent
/// `CAP END`: online, but not welcomed.
pub async fn sasl_without_cap_end(server: &TestServer, name: &str, password: &str) -> Raw {
    let mut irc = Raw::connect(server).await;
    irc.send("CAP LS 302").await;
    irc.send(&format!("NICK {name}")).await;
    irc.send(&format!("USER {name} 0 * :{name}")).await;
    irc.send("CAP REQ :sasl").await;
    irc.until(" ACK :sasl").await;
    irc.send("AUTHENTICATE PLAIN").await;
    irc.expect("AUTHENTICATE +").await;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{name}\0{password}"));
    irc.send(&format!("AUTHENTICATE {plain}")).await;
    irc.until(" 903 ").await;
    irc
}

#[tokio::test]
async fn an_unregistered_client_is_told_why_at_the_login_deadline() {
    let server = server_with(|settings| settings.login_timeout_secs = 1);
    let mut ann = Raw::connect(&server).await;
    ann.send("NICK ann").await;
    assert_eq!(
        ann.until_closed().await,
        ["ERROR :Closing link: no login in time"]
    );
}

#[tokio::test]
async fn an_unregistered_flooder_is_told_why_it_is_closed() {
    let server = server_with(|settings| {
        settings.flood_lines_per_sec = 1;
        settings.flood_burst = 5;
        settings.flood_kick_after = 10;
    });
    let mut flooder = Raw::connect(&server).await;
    let burst: String = (0..30).map(|i| format!("PING :{i}\r\n")).collect();
    flooder.send_raw(burst.as_bytes()).await;
    let seen = flooder.until_closed().await;
    let pongs: Vec<String> = (0..5)
        .map(|i| format!(":irc.test PONG irc.test :{i}"))
        .collect();
    assert_eq!(seen[..5], pongs[..], "{seen:?}");
    let dropped = ":irc.test NOTICE * :over 1 lines per second; the line was dropped";
    assert_eq!(seen[5..14], [dropped; 9], "{seen:?}");
    assert_eq!(
        seen[14..],
        ["ERROR :Closing link: too many lines over the rate limit"]
    );
}

#[tokio::test]
async fn an_unregistered_client_is_told_of_the_shutdown() {
    let mut server = server();
    let mut ann = Raw::connect(&server).await;
    ann.send("NICK ann").await;
    // Its session is running: PING is answered before registration.
    ann.send("PING :here").await;
    ann.expect(":irc.test PONG irc.test :here").await;
    server.terminate();
    assert_eq!(
        ann.until_closed().await,
        ["ERROR :Closing link: the server is going down"]
    );
}

#[tokio::test]
async fn a_login_elsewhere_before_the_welcome_is_told_too() {
    let server = server();
    server.register("sam", "pw").await.quit().await;
    let mut irc = sasl_without_cap_end(&server, "sam", "pw").await;
    let _line = server.login("sam", "pw", &["OK LOGIN sam"]).await;
    assert_eq!(
        irc.until_closed().await,
        ["ERROR :Closing link: you logged in on another connection"]
    );
}
