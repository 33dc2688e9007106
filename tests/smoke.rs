mod support;

use support::ServerProcess;

#[tokio::test]
async fn greets_and_answers_ping() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    assert_eq!(client.ask("PING 1").await, "PONG 1");
}
