//! The bundled client's TUI, run in a pseudo-terminal against the real server: keys are
//! typed into the terminal, and its output is turned back into a screen by `vt100`.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

use crate::support::{PATIENCE, Server, TestServer};

/// The client in a pseudo-terminal, and the screen it draws.
struct Tui {
    screen: Arc<Mutex<vt100::Parser>>,
    keyboard: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    master: Box<dyn MasterPty + Send>,
}

fn size(rows: u16, cols: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

impl Tui {
    fn start(server: &TestServer, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let (rows, cols) = (24, 100);
        let pair = native_pty_system()
            .openpty(size(rows, cols))
            .expect("a pseudo-terminal");
        let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_client"));
        command.arg("--addr");
        command.arg(server.addr.to_string());
        command.args(args);
        command.env("TERM", "xterm-256color");
        command.env_remove("LINECHAT_ADDR");
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = pair.slave.spawn_command(command).expect("start the client");
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            NonZeroU16::new(rows).unwrap(),
            NonZeroU16::new(cols).unwrap(),
            0,
        )));
        let mut output = pair.master.try_clone_reader().unwrap();
        let parser = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n) = output.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buffer[..n]);
            }
        });
        Self {
            screen,
            keyboard: pair.master.take_writer().unwrap(),
            child,
            master: pair.master,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn rows(&self) -> Vec<String> {
        let parser = self.screen.lock().unwrap();
        let (_, cols) = parser.screen().size();
        parser.screen().rows(0, cols.get()).collect()
    }

    /// Waits until the screen shows `text`.
    async fn wait_for(&self, text: &str) {
        self.wait_until(text, |contents| contents.contains(text))
            .await;
    }

    async fn wait_until(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let contents = self.contents();
            if done(&contents) {
                return;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {what:?}; it shows:\n{contents}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn type_keys(&mut self, keys: &str) {
        self.keyboard.write_all(keys.as_bytes()).unwrap();
        self.keyboard.flush().unwrap();
    }

    fn resize(&self, rows: u16, cols: u16) {
        self.master.resize(size(rows, cols)).unwrap();
        self.screen.lock().unwrap().set_size(
            NonZeroU16::new(rows).unwrap(),
            NonZeroU16::new(cols).unwrap(),
        );
    }

    /// Waits for the client to exit.
    async fn exit_status(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take in the last bytes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            assert!(Instant::now() < deadline, "the client did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

const LEFT: &str = "\x1b[D";
const UP: &str = "\x1b[A";
const TAB: &str = "\t";
const ENTER: &str = "\r";
const CTRL_U: &str = "\x15";

#[tokio::test]
async fn chat_in_the_tui_then_quit_and_restore_the_terminal() {
    let server = TestServer::start();
    let mut tui = Tui::start(&server, &["--user", "alice", "--guest"], &[]);
    tui.wait_for("connected to").await;
    assert!(tui.screen.lock().unwrap().screen().alternate_screen());
    let rows = tui.rows();
    assert!(rows[0].starts_with("┌ Chats"), "{rows:#?}");
    assert!(rows[1].starts_with("│* everyone"), "{rows:#?}");
    assert!(rows[23].starts_with("connected to "), "{rows:#?}");

    let mut bob = server.guest("bob").await;
    tui.wait_for("bob is online").await;

    // A room: created, selected, and its members shown.
    tui.type_keys(":cr dev");
    tui.type_keys(ENTER);
    tui.wait_for("┌ #dev").await;
    tui.wait_for("-- created #dev").await;
    tui.wait_for("Members 1").await;
    bob.expect("NOTICE ROOM dev alice").await;
    assert_eq!(bob.ask("JR dev").await, "OK JR dev");
    tui.wait_for("bob joined").await;
    tui.wait_for("Members 2").await;

    // Text without a command goes to the room; wide characters are drawn in place.
    assert_eq!(bob.ask("RM dev hello 日本語 alice").await, "OK RM dev");
    tui.wait_for("bob: hello 日本語 alice").await;
    tui.type_keys("hi bob");
    tui.type_keys(ENTER);
    bob.expect("RM dev alice hi bob").await;
    tui.wait_for("alice: hi bob").await;

    // A private message makes a conversation, with an unread count until it is opened.
    assert_eq!(bob.ask("PM alice psst").await, "OK PM alice");
    tui.wait_for("@bob (1)").await;
    tui.type_keys(TAB);
    tui.wait_for("┌ @bob").await;
    tui.wait_for("bob: psst").await;
    assert!(!tui.contents().contains("@bob (1)"));

    // Editing: the cursor moves, and what is typed goes where it is.
    tui.type_keys("helo");
    tui.type_keys(LEFT);
    tui.type_keys("l");
    tui.type_keys(ENTER);
    bob.expect("PM alice hello").await;
    // Up brings the line back; Ctrl-U clears it.
    tui.type_keys(UP);
    tui.wait_until("the line back in the input box", |screen| {
        screen.lines().any(|row| row.starts_with("│hello "))
    })
    .await;
    tui.type_keys(CTRL_U);
    tui.wait_until("an empty input box", |screen| {
        !screen.lines().any(|row| row.starts_with("│hello "))
    })
    .await;

    // A smaller terminal: the members pane goes, the layout follows the new width.
    tui.resize(16, 60);
    tui.type_keys(TAB); // any key redraws, as a resize does
    tui.wait_until("a 60-column layout", |screen| {
        screen
            .lines()
            .next()
            .is_some_and(|row| row.ends_with("┐") && row.chars().count() == 60)
    })
    .await;
    assert!(!tui.contents().contains("Online"));
    tui.wait_for("* everyone").await;

    tui.type_keys(":quit see you");
    tui.type_keys(ENTER);
    let status = tui.exit_status().await;
    assert!(status.success(), "{status}");
    {
        let parser = tui.screen.lock().unwrap();
        let screen = parser.screen();
        assert!(!screen.alternate_screen(), "the terminal is restored");
        assert!(!screen.hide_cursor(), "the cursor is shown again");
    }
    let mut seen = vec![bob.line().await, bob.line().await];
    seen.sort();
    assert_eq!(seen, ["LR dev alice", "NOTICE OFFLINE alice QUIT see you"]);
}

#[tokio::test]
async fn a_panic_restores_the_terminal() {
    let server = TestServer::start();
    let mut tui = Tui::start(
        &server,
        &["--user", "alice", "--guest"],
        &[("LINECHAT_CLIENT_TEST_PANIC", "1"), ("RUST_BACKTRACE", "0")],
    );
    tui.wait_for("connected to").await;
    assert!(tui.screen.lock().unwrap().screen().alternate_screen());
    tui.type_keys("!");
    let status = tui.exit_status().await;
    assert!(!status.success());
    let screen = tui.screen.lock().unwrap();
    assert!(
        !screen.screen().alternate_screen(),
        "the terminal is restored"
    );
    // The panic message is on the normal screen, where the user can read it.
    assert!(
        screen.screen().contents().contains("test panic"),
        "{}",
        screen.screen().contents()
    );
}
