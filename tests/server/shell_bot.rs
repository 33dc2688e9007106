//! Runs `scripts/echo-bot.sh` against the real server and talks to it as a user would.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Client, PATIENCE, Server, ServerProcess, eventually};

/// The echo bot: `sh`, with its `nc` and keepalive loop, in a process group of its own so that
/// all of them can be stopped together. Dropping it stops them.
struct Bot {
    child: Child,
}

impl Bot {
    fn start(server: &ServerProcess, name: &str, room: &str) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/echo-bot.sh");
        let child = Command::new("sh")
            .arg(script)
            .arg("127.0.0.1")
            .arg(server.addr.port().to_string())
            .args([name, room])
            // A short keepalive, so that the bot notices a closed connection quickly.
            .env("ECHO_BOT_KEEPALIVE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the echo bot");
        Self { child }
    }

    /// Fails the test if the bot has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("the echo bot exited: {status}");
        }
    }

    /// Waits up to `wait` for the bot to exit by itself.
    fn wait_for_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Signals the whole process group (nothing happens if it is gone already), then reaps `sh`.
    fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
            if self.wait_for_exit(Duration::from_secs(2)).is_some() {
                return;
            }
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The next line that is not a `NOTICE`: the notices about the bot logging in and creating its
/// room may come at any time.
async fn next_reply(client: &mut Client) -> String {
    loop {
        let line = client.line().await;
        if !line.starts_with("NOTICE ") {
            return line;
        }
    }
}

/// The next two replies, sorted: a command's `OK` and the bot's answer to it come from
/// different places, so their order is not fixed.
async fn two_replies(client: &mut Client) -> Vec<String> {
    let mut lines = vec![next_reply(client).await, next_reply(client).await];
    lines.sort();
    lines
}

fn sorted(lines: [&str; 2]) -> Vec<String> {
    let mut lines = lines.map(String::from).to_vec();
    lines.sort();
    lines
}

/// Starts the bot as `echobot` in room `bots`, and returns it with a client `tester` once
/// `LRU bots` lists the bot.
async fn bot_in_room(server: &ServerProcess) -> (Bot, Client) {
    // The tester first: a newcomer may hear of someone else's login before its own `OK`
    // (protocol.md §6), which `guest` does not expect.
    let mut tester = server.guest("tester").await;
    let mut bot = Bot::start(server, "echobot", "bots");
    eventually("the bot joined bots", async || {
        tester.send("LRU bots").await;
        let answer = next_reply(&mut tester).await;
        let mut words = answer.split(' ');
        if words.next() == Some("LRU") && words.next() == Some("bots") {
            if words.any(|user| user == "echobot") {
                return Some(());
            }
        } else {
            assert!(
                answer.starts_with("ERR NO_SUCH_ROOM "),
                "unexpected answer to LRU: {answer:?}"
            );
        }
        bot.assert_running();
        None
    })
    .await;
    (bot, tester)
}

#[tokio::test]
async fn echoes_room_and_private_messages() {
    let server = ServerProcess::start();
    let (mut bot, mut tester) = bot_in_room(&server).await;

    tester.send("JR bots").await;
    assert_eq!(next_reply(&mut tester).await, "OK JR bots");

    tester.send("RM bots hello world").await;
    assert_eq!(
        two_replies(&mut tester).await,
        sorted(["OK RM bots", "RM bots echobot echo: hello world"])
    );

    // The text is everything after the sender, inner spaces included.
    tester.send("RM bots  spaced   out  *  $HOME").await;
    assert_eq!(
        two_replies(&mut tester).await,
        sorted(["OK RM bots", "RM bots echobot echo: spaced   out  *  $HOME"])
    );

    tester.send("PM echobot ping").await;
    assert_eq!(
        two_replies(&mut tester).await,
        sorted(["OK PM echobot", "PM echobot echo: ping"])
    );

    bot.assert_running();
    bot.kill();
}

#[tokio::test]
async fn joins_an_existing_room_and_exits_when_the_server_closes() {
    let mut server = ServerProcess::start();
    // The room exists already, so the bot's CR fails and it must JR instead.
    let mut owner = server.guest("owner").await;
    owner.send("CR bots").await;
    assert_eq!(next_reply(&mut owner).await, "OK CR bots");

    let (mut bot, mut tester) = bot_in_room(&server).await;
    tester.send("PM echobot still there?").await;
    assert_eq!(
        two_replies(&mut tester).await,
        sorted(["OK PM echobot", "PM echobot echo: still there?"])
    );

    server.terminate();
    let status = bot.wait_for_exit(PATIENCE);
    assert!(
        status.is_some(),
        "the bot still runs {PATIENCE:?} after the server closed"
    );
}
