//! Every command of the protocol, over real TCP against the real binary: the exact `OK` and
//! `ERR` lines, and every delivery and notification the other clients see.
//!
//! Ordering: a test only asserts an order between two lines when the server guarantees it. The
//! clients are driven one at a time (each waits for its reply before the next acts), and the
//! `NOTICE ONLINE` lines that logins cause are read by the clients already online. The one
//! place where the server gives no order is a disconnect: the `LR` lines come from the rooms
//! and the `NOTICE OFFLINE` from the user table, two independent actors, so those are compared
//! as a set ([`expect_unordered`]).

mod support;

use std::time::Duration;

use support::{Client, ServerProcess};

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

const NOT_LOGGED_IN: &str = "ERR NOT_LOGGED_IN log in first: LOGIN <name> <password>, \
                             REGISTER <name> <password> or NICK <name>";
const BAD_CHARACTER: &str = "a name may hold only letters A-Z, digits, '_' and '-'";

/// Every `HELP` line, in the order the server lists the verbs.
const HELP_LINES: [&str; 17] = [
    "HELP REGISTER <name> <password> - create an account and log in",
    "HELP LOGIN <name> <password> - log in to your account",
    "HELP NICK <name> - log in as a guest",
    "HELP MSG <text> - message everyone online",
    "HELP PM <user> <text> - private message",
    "HELP USERS - list who is online",
    "HELP CR <room> - create a room and join it",
    "HELP JR <room> - join a room",
    "HELP LR <room> - leave a room",
    "HELP LRS - list rooms",
    "HELP LRU <room> - list a room's members",
    "HELP RM <room> <text> - message a room you are in",
    "HELP HISTORY <*|room|user> [count] - past messages: global, a room you are in, or your private talk with a user",
    "HELP PING [token] - the server answers PONG [token]",
    "HELP PONG [token] - answer to the server's PING; it gets no reply",
    "HELP HELP [verb] - this help",
    "HELP QUIT [reason] - leave the server",
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Logs in guests one after another. Each client already online reads the `NOTICE ONLINE` of
/// every later one, so all of them start with nothing unread.
async fn guests<const N: usize>(server: &ServerProcess, names: [&str; N]) -> [Client; N] {
    let mut clients: Vec<Client> = Vec::with_capacity(N);
    for name in names {
        let client = server.guest(name).await;
        for earlier in &mut clients {
            earlier.expect(&format!("NOTICE ONLINE {name}")).await;
        }
        clients.push(client);
    }
    match clients.try_into() {
        Ok(clients) => clients,
        Err(_) => unreachable!("N clients were made"),
    }
}

/// A new connection that registers `name` and is logged in as it.
async fn register(server: &ServerProcess, name: &str, password: &str) -> Client {
    let mut client = server.connect().await;
    assert_eq!(
        client.ask(&format!("REGISTER {name} {password}")).await,
        format!("OK REGISTER {name}")
    );
    client
}

/// Sends `command` and asserts the single reply line.
async fn check(client: &mut Client, command: &str, reply: &str) {
    assert_eq!(client.ask(command).await, reply, "reply to {command:?}");
}

/// Reads as many lines as `expected` holds and compares them without regard to order, for
/// lines that come from independent actors of the server.
async fn expect_unordered(client: &mut Client, expected: &[&str]) {
    let mut seen = Vec::with_capacity(expected.len());
    for _ in expected {
        seen.push(client.line().await);
    }
    seen.sort();
    let mut expected: Vec<String> = expected.iter().map(|line| line.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

/// Quits `client` cleanly: `OK QUIT`, then the server closes with nothing more.
async fn quit(mut client: Client, command: &str) {
    check(&mut client, command, "OK QUIT").await;
    assert_eq!(client.expect_closed().await, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Before login: greeting, PING, HELP, QUIT, refusals
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn greeting_is_the_documented_hello_line() {
    let server = ServerProcess::start();
    let mut client = Client::connect(server.addr).await;
    client
        .expect(&format!(
            "HELLO linechat {} - log in with LOGIN <name> <password>, \
             REGISTER <name> <password> or NICK <name>; HELP lists the commands",
            env!("CARGO_PKG_VERSION")
        ))
        .await;
    client.expect_silence(QUIET).await;
}

#[tokio::test]
async fn ping_answers_pong_with_and_without_token() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    check(&mut client, "PING", "PONG").await;
    check(&mut client, "PING 42", "PONG 42").await;
    check(&mut client, "PING two  words", "PONG two  words").await;
    // Separators around the line are not part of the token.
    check(&mut client, "  PING   padded  ", "PONG padded").await;

    check(&mut client, "NICK alice", "OK NICK alice").await;
    check(&mut client, "PING", "PONG").await;
    check(&mut client, "PING after-login", "PONG after-login").await;
    client.expect_silence(QUIET).await;
}

#[tokio::test]
async fn help_lists_one_line_per_verb_then_ok() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    for logged_in in [false, true] {
        client.send("HELP").await;
        for line in HELP_LINES {
            client.expect(line).await;
        }
        client.expect("OK HELP").await;
        if !logged_in {
            check(&mut client, "NICK alice", "OK NICK alice").await;
        }
    }
    client.expect_silence(QUIET).await;
}

#[tokio::test]
async fn help_for_one_verb() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    for command in ["HELP pm", "HELP PM", "HELP :pm", "HELP /Pm", "help pm"] {
        client.send(command).await;
        client
            .expect("HELP PM <user> <text> - private message")
            .await;
        client.expect("OK HELP").await;
    }
    client.send("HELP quit").await;
    client.expect("HELP QUIT [reason] - leave the server").await;
    client.expect("OK HELP").await;
    check(
        &mut client,
        "HELP nope",
        "ERR UNKNOWN_COMMAND unknown command \"nope\"; HELP lists the commands",
    )
    .await;
    check(
        &mut client,
        "HELP pm msg",
        "ERR BAD_ARGUMENTS too many arguments; usage: HELP [verb] - this help",
    )
    .await;
    client.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unknown_commands_and_bad_arguments() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    check(
        &mut client,
        "FROB x",
        "ERR UNKNOWN_COMMAND unknown command \"FROB\"; HELP lists the commands",
    )
    .await;
    check(
        &mut client,
        "::pm bob hi",
        "ERR UNKNOWN_COMMAND unknown command \"::pm\"; HELP lists the commands",
    )
    .await;
    // Blank lines are ignored, not errors.
    client.send("").await;
    client.send("   ").await;
    check(&mut client, "PING still-here", "PONG still-here").await;

    check(&mut client, "NICK alice", "OK NICK alice").await;
    for (command, reply) in [
        (
            "MSG",
            "ERR BAD_ARGUMENTS missing argument; usage: MSG <text> - message everyone online",
        ),
        (
            "PM bob",
            "ERR BAD_ARGUMENTS missing argument; usage: PM <user> <text> - private message",
        ),
        (
            "USERS all",
            "ERR BAD_ARGUMENTS too many arguments; usage: USERS - list who is online",
        ),
        (
            "CR",
            "ERR BAD_ARGUMENTS missing argument; usage: CR <room> - create a room and join it",
        ),
        (
            "JR a b",
            "ERR BAD_ARGUMENTS too many arguments; usage: JR <room> - join a room",
        ),
        (
            "LRS x",
            "ERR BAD_ARGUMENTS too many arguments; usage: LRS - list rooms",
        ),
        (
            "RM dev",
            "ERR BAD_ARGUMENTS missing argument; usage: RM <room> <text> - message a room you are in",
        ),
    ] {
        check(&mut client, command, reply).await;
    }
    client.expect_silence(QUIET).await;
}

#[tokio::test]
async fn chat_commands_before_login_are_refused() {
    let server = ServerProcess::start();
    let mut observer = server.guest("observer").await;
    let mut client = server.connect().await;
    for command in [
        "MSG hello",
        "PM observer hi",
        "USERS",
        "CR dev",
        "JR dev",
        "LR dev",
        "LRS",
        "LRU dev",
        "RM dev hi",
    ] {
        check(&mut client, command, NOT_LOGGED_IN).await;
    }
    // Nothing of that reached anyone, and no room was made.
    observer.expect_silence(QUIET).await;
    check(&mut observer, "LRS", "LRS").await;
    check(&mut observer, "USERS", "USERS observer").await;

    // The refused connection can still log in.
    check(&mut client, "NICK alice", "OK NICK alice").await;
    observer.expect("NOTICE ONLINE alice").await;
    check(&mut client, "USERS", "USERS alice observer").await;
}

#[tokio::test]
async fn quit_before_login_closes_without_notice() {
    let server = ServerProcess::start();
    let mut observer = server.guest("observer").await;
    let client = server.connect().await;
    quit(client, "QUIT").await;
    let client = server.connect().await;
    quit(client, "QUIT bye now").await;
    observer.expect_silence(QUIET).await;
    check(&mut observer, "USERS", "USERS observer").await;
}

// ---------------------------------------------------------------------------------------------
// Login: NICK, REGISTER, LOGIN
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn nick_logs_in_and_announces_to_others_only() {
    let server = ServerProcess::start();
    let mut alice = server.connect().await;
    check(&mut alice, "NICK alice", "OK NICK alice").await;
    let mut waiting = server.connect().await; // connected, not logged in
    let mut bob = server.connect().await;
    check(&mut bob, "NICK Bob", "OK NICK Bob").await;
    alice.expect("NOTICE ONLINE Bob").await;
    alice.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
    waiting.expect_silence(QUIET).await;
    check(&mut bob, "USERS", "USERS alice Bob").await;
}

#[tokio::test]
async fn register_logs_in_and_announces() {
    let server = ServerProcess::start();
    let [mut observer] = guests(&server, ["observer"]).await;
    let mut alice = register(&server, "alice", "s3cret words").await;
    observer.expect("NOTICE ONLINE alice").await;
    check(&mut alice, "USERS", "USERS alice observer").await;
    check(&mut alice, "MSG hi", "OK MSG").await;
    observer.expect("MSG alice hi").await;
}

#[tokio::test]
async fn login_with_right_and_wrong_password() {
    let server = ServerProcess::start();
    let [mut observer] = guests(&server, ["observer"]).await;
    let alice = register(&server, "alice", "s3cret words").await;
    observer.expect("NOTICE ONLINE alice").await;
    quit(alice, "QUIT").await;
    observer.expect("NOTICE OFFLINE alice QUIT").await;

    let mut client = server.connect().await;
    for wrong in [
        "LOGIN alice wrong",
        "LOGIN alice s3cret",
        "LOGIN alice S3CRET WORDS",
    ] {
        check(
            &mut client,
            wrong,
            "ERR BAD_PASSWORD wrong name or password",
        )
        .await;
    }
    // A failed login leaves the connection logged out.
    check(&mut client, "USERS", NOT_LOGGED_IN).await;
    observer.expect_silence(QUIET).await;

    check(&mut client, "LOGIN alice s3cret words", "OK LOGIN alice").await;
    observer.expect("NOTICE ONLINE alice").await;
    check(&mut client, "USERS", "USERS alice observer").await;
}

#[tokio::test]
async fn login_to_an_unknown_account_is_a_bad_password() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    check(
        &mut client,
        "LOGIN nobody whatever",
        "ERR BAD_PASSWORD wrong name or password",
    )
    .await;
    check(&mut client, "USERS", NOT_LOGGED_IN).await;
    // The failed login did not create or reserve the name.
    check(&mut client, "NICK nobody", "OK NICK nobody").await;
}

#[tokio::test]
async fn login_in_another_case_gets_the_registered_spelling() {
    let server = ServerProcess::start();
    let [mut observer] = guests(&server, ["observer"]).await;
    let alice = register(&server, "Alice", "pw").await;
    observer.expect("NOTICE ONLINE Alice").await;
    quit(alice, "QUIT").await;
    observer.expect("NOTICE OFFLINE Alice QUIT").await;

    let mut alice = server.connect().await;
    check(&mut alice, "LOGIN aLICE pw", "OK LOGIN Alice").await;
    observer.expect("NOTICE ONLINE Alice").await;
    check(&mut observer, "USERS", "USERS Alice observer").await;
    check(&mut alice, "MSG hello", "OK MSG").await;
    observer.expect("MSG Alice hello").await;
    check(
        &mut alice,
        "NICK x",
        "ERR ALREADY_LOGGED_IN you are logged in as Alice",
    )
    .await;
}

#[tokio::test]
async fn register_refuses_taken_names() {
    let server = ServerProcess::start();
    let [mut bob] = guests(&server, ["bob"]).await;
    let alice = register(&server, "alice", "pw").await;
    bob.expect("NOTICE ONLINE alice").await;

    let mut client = server.connect().await;
    // A registered account, online (then the name is in use) or not, in any case.
    check(
        &mut client,
        "REGISTER ALICE other",
        "ERR NAME_TAKEN ALICE is already registered",
    )
    .await;
    quit(alice, "QUIT").await;
    bob.expect("NOTICE OFFLINE alice QUIT").await;
    check(
        &mut client,
        "REGISTER alice other",
        "ERR NAME_TAKEN alice is already registered",
    )
    .await;
    // A guest online under that name, in any case.
    check(
        &mut client,
        "REGISTER BOB pw",
        "ERR NAME_TAKEN BOB is online already",
    )
    .await;
    check(&mut client, "USERS", NOT_LOGGED_IN).await;
    bob.expect_silence(QUIET).await;

    // The refused REGISTER of the guest's name created no account: once bob is gone, the
    // name is free for a guest again.
    quit(bob, "QUIT").await;
    let mut watcher = server.guest("watcher").await;
    let mut bob = server.connect().await;
    check(&mut bob, "NICK bob", "OK NICK bob").await;
    watcher.expect("NOTICE ONLINE bob").await;
}

#[tokio::test]
async fn guest_names_are_unique_regardless_of_case() {
    let server = ServerProcess::start();
    let [mut alice] = guests(&server, ["alice"]).await;
    let mut client = server.connect().await;
    check(
        &mut client,
        "NICK Alice",
        "ERR NAME_TAKEN Alice is online already",
    )
    .await;
    check(
        &mut client,
        "NICK ALICE",
        "ERR NAME_TAKEN ALICE is online already",
    )
    .await;
    check(&mut client, "USERS", NOT_LOGGED_IN).await;
    alice.expect_silence(QUIET).await;
    // Still free to pick another name.
    check(&mut client, "NICK alice2", "OK NICK alice2").await;
    alice.expect("NOTICE ONLINE alice2").await;
    check(&mut alice, "USERS", "USERS alice alice2").await;
}

#[tokio::test]
async fn nick_of_a_registered_account_is_taken() {
    let server = ServerProcess::start();
    let [mut observer] = guests(&server, ["observer"]).await;
    let alice = register(&server, "alice", "pw").await;
    observer.expect("NOTICE ONLINE alice").await;

    let mut client = server.connect().await;
    check(
        &mut client,
        "NICK alice",
        "ERR NAME_TAKEN alice is a registered account; use LOGIN",
    )
    .await;
    // Also while the account is offline, and in another case.
    quit(alice, "QUIT").await;
    observer.expect("NOTICE OFFLINE alice QUIT").await;
    check(
        &mut client,
        "NICK ALICE",
        "ERR NAME_TAKEN ALICE is a registered account; use LOGIN",
    )
    .await;
    check(&mut client, "USERS", NOT_LOGGED_IN).await;
    observer.expect_silence(QUIET).await;
}

#[tokio::test]
async fn login_while_online_elsewhere_takes_the_session_over() {
    let server = ServerProcess::start();
    let [mut observer] = guests(&server, ["observer"]).await;
    let mut first = register(&server, "alice", "pw").await;
    observer.expect("NOTICE ONLINE alice").await;

    // A wrong password changes nothing.
    let mut second = server.connect().await;
    check(
        &mut second,
        "LOGIN alice wrong",
        "ERR BAD_PASSWORD wrong name or password",
    )
    .await;
    check(&mut first, "USERS", "USERS alice observer").await;
    // The right one, in any case, takes the account over: the first connection is told and
    // closed, and nobody else hears of it.
    check(&mut second, "LOGIN ALICE pw", "OK LOGIN alice").await;
    assert_eq!(
        first.expect_closed().await,
        ["NOTICE CLOSING REPLACED you logged in on another connection"]
    );
    observer.expect_silence(QUIET).await;
    check(&mut second, "USERS", "USERS alice observer").await;
    check(&mut observer, "PM alice still you?", "OK PM alice").await;
    second.expect("PM observer still you?").await;
}

#[tokio::test]
async fn login_verbs_after_login_are_refused() {
    let server = ServerProcess::start();
    let [mut alice, mut observer] = guests(&server, ["alice", "observer"]).await;
    for command in [
        "NICK other",
        "NICK alice",
        "REGISTER carol pw",
        "LOGIN alice pw",
    ] {
        check(
            &mut alice,
            command,
            "ERR ALREADY_LOGGED_IN you are logged in as alice",
        )
        .await;
    }
    check(&mut alice, "USERS", "USERS alice observer").await;
    observer.expect_silence(QUIET).await;
    // The refused REGISTER created no account: carol is free for a guest.
    let mut carol = server.connect().await;
    check(&mut carol, "NICK carol", "OK NICK carol").await;

    let mut dave = register(&server, "dave", "pw").await;
    for command in ["NICK x", "REGISTER y pw", "LOGIN dave pw"] {
        check(
            &mut dave,
            command,
            "ERR ALREADY_LOGGED_IN you are logged in as dave",
        )
        .await;
    }
}

#[tokio::test]
async fn guests_disabled_by_flag() {
    let server = ServerProcess::start_with(&["--allow-guests", "false"], &[]);
    check_guests_disabled(&server).await;
}

#[tokio::test]
async fn guests_disabled_by_environment() {
    let server = ServerProcess::start_with(&[], &[("LINECHAT_ALLOW_GUESTS", "false")]);
    check_guests_disabled(&server).await;
}

async fn check_guests_disabled(server: &ServerProcess) {
    // Neither the greeting nor HELP offers what the server refuses.
    let mut client = Client::connect(server.addr).await;
    let hello = client.line().await;
    assert!(
        hello.ends_with(
            "log in with LOGIN <name> <password> or REGISTER <name> <password>; \
             HELP lists the commands"
        ),
        "{hello}"
    );
    client.send("HELP").await;
    let mut help = Vec::new();
    loop {
        match client.line().await {
            line if line == "OK HELP" => break,
            line => help.push(line),
        }
    }
    assert!(
        help.iter().all(|line| !line.starts_with("HELP NICK")),
        "{help:?}"
    );
    assert!(
        help.iter().any(|line| line.starts_with("HELP REGISTER")),
        "{help:?}"
    );
    check(
        &mut client,
        "NICK alice",
        "ERR GUESTS_DISABLED guests are not allowed here; REGISTER or LOGIN",
    )
    .await;
    check(
        &mut client,
        "USERS",
        "ERR NOT_LOGGED_IN log in first: LOGIN <name> <password> or REGISTER <name> <password>",
    )
    .await;
    // Accounts still work, on the same connection.
    check(&mut client, "REGISTER alice pw", "OK REGISTER alice").await;
    check(&mut client, "USERS", "USERS alice").await;
    let mut bob = server.connect().await;
    check(
        &mut bob,
        "NICK bob",
        "ERR GUESTS_DISABLED guests are not allowed here; REGISTER or LOGIN",
    )
    .await;
    check(&mut bob, "REGISTER bob pw", "OK REGISTER bob").await;
    client.expect("NOTICE ONLINE bob").await;
    quit(bob, "QUIT").await;
    client.expect("NOTICE OFFLINE bob QUIT").await;
    let mut bob = server.connect().await;
    check(&mut bob, "LOGIN bob pw", "OK LOGIN bob").await;
    client.expect("NOTICE ONLINE bob").await;
}

#[tokio::test]
async fn bad_names_are_refused() {
    let server = ServerProcess::start();
    let mut client = server.connect().await;
    let too_long = "a".repeat(33);
    for command in [
        "NICK a.b",
        "NICK al:ce",
        "NICK #room",
        "NICK caf\u{e9}",
        "REGISTER a.b pw",
        "LOGIN a/b pw",
    ] {
        let name = command.split(' ').nth(1).unwrap();
        check(
            &mut client,
            command,
            &format!("ERR BAD_NAME bad name {name:?}: {BAD_CHARACTER}"),
        )
        .await;
    }
    check(
        &mut client,
        &format!("NICK {too_long}"),
        &format!("ERR BAD_NAME bad name \"{too_long}\": a name is at most 32 characters"),
    )
    .await;
    check(
        &mut client,
        "NICK",
        "ERR BAD_ARGUMENTS missing argument; usage: NICK <name> - log in as a guest",
    )
    .await;
    check(
        &mut client,
        "NICK two words",
        "ERR BAD_ARGUMENTS too many arguments; usage: NICK <name> - log in as a guest",
    )
    .await;
    check(
        &mut client,
        "REGISTER alice",
        "ERR BAD_ARGUMENTS missing argument; usage: REGISTER <name> <password> - create an account and log in",
    )
    .await;
    check(&mut client, "USERS", NOT_LOGGED_IN).await;

    // The longest name, and every allowed character, are fine.
    let longest = "b".repeat(32);
    check(
        &mut client,
        &format!("NICK {longest}"),
        &format!("OK NICK {longest}"),
    )
    .await;
    let mut other = server.connect().await;
    check(&mut other, "NICK Al_1-x", "OK NICK Al_1-x").await;
    client.expect("NOTICE ONLINE Al_1-x").await;

    // Names of users and rooms in chat commands are checked the same way.
    for command in [
        "PM a.b hi",
        "CR a.b",
        "JR a.b",
        "LR a.b",
        "LRU a.b",
        "RM a.b hi",
    ] {
        check(
            &mut client,
            command,
            &format!("ERR BAD_NAME bad name \"a.b\": {BAD_CHARACTER}"),
        )
        .await;
    }
    check(&mut client, "LRS", "LRS").await;
    other.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------------
// MSG, PM, USERS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn msg_reaches_everyone_else() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol] = guests(&server, ["alice", "bob", "carol"]).await;
    let mut lurker = server.connect().await; // not logged in: gets nothing
    check(&mut alice, "MSG hello world", "OK MSG").await;
    bob.expect("MSG alice hello world").await;
    carol.expect("MSG alice hello world").await;

    // Inner spacing and tabs are kept; the separators after the verb and at the ends are not.
    check(&mut bob, "MSG   spaced   out\ttext  ", "OK MSG").await;
    alice.expect("MSG bob spaced   out\ttext").await;
    carol.expect("MSG bob spaced   out\ttext").await;

    // Text that looks like a command is just text.
    check(&mut carol, "MSG PM alice : /QUIT", "OK MSG").await;
    alice.expect("MSG carol PM alice : /QUIT").await;
    bob.expect("MSG carol PM alice : /QUIT").await;

    for client in [&mut alice, &mut bob, &mut carol, &mut lurker] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn pm_reaches_only_its_target() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol] = guests(&server, ["alice", "Bob", "carol"]).await;
    check(&mut alice, "PM Bob hi  there, Bob", "OK PM Bob").await;
    bob.expect("PM alice hi  there, Bob").await;
    // The target in any case; the OK names them as they are online.
    check(&mut alice, "PM bob again", "OK PM Bob").await;
    bob.expect("PM alice again").await;
    check(&mut bob, "PM ALICE back", "OK PM alice").await;
    alice.expect("PM Bob back").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        client.expect_silence(QUIET).await;
    }

    // Nobody by that name online.
    check(
        &mut alice,
        "PM dave hello",
        "ERR NO_SUCH_USER dave is not online",
    )
    .await;
    quit(carol, "QUIT").await;
    alice.expect("NOTICE OFFLINE carol QUIT").await;
    bob.expect("NOTICE OFFLINE carol QUIT").await;
    check(
        &mut alice,
        "PM carol still there?",
        "ERR NO_SUCH_USER carol is not online",
    )
    .await;
    alice.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn users_lists_who_is_online_sorted() {
    let server = ServerProcess::start();
    let [mut carol, bob, mut alice] = guests(&server, ["carol", "Bob", "alice"]).await;
    check(&mut carol, "USERS", "USERS alice Bob carol").await;
    check(&mut alice, "users", "USERS alice Bob carol").await;
    quit(bob, "QUIT").await;
    carol.expect("NOTICE OFFLINE Bob QUIT").await;
    alice.expect("NOTICE OFFLINE Bob QUIT").await;
    check(&mut carol, "USERS", "USERS alice carol").await;
}

// ---------------------------------------------------------------------------------------------
// Rooms: CR, JR, LR, LRS, LRU, RM
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cr_creates_joins_and_notifies_everyone_else() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol] = guests(&server, ["alice", "bob", "carol"]).await;
    check(&mut alice, "LRS", "LRS").await;
    check(&mut alice, "CR dev", "OK CR dev").await;
    bob.expect("NOTICE ROOM dev alice").await;
    carol.expect("NOTICE ROOM dev alice").await;
    alice.expect_silence(QUIET).await;
    check(&mut alice, "LRS", "LRS dev").await;
    check(&mut bob, "LRU dev", "LRU dev alice").await;
    // The creator is a member: RM works at once.
    check(&mut alice, "RM dev first", "OK RM dev").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn cr_of_an_existing_room_is_refused_in_any_case() {
    let server = ServerProcess::start();
    let [mut alice, mut bob] = guests(&server, ["alice", "bob"]).await;
    check(&mut alice, "CR Dev", "OK CR Dev").await;
    bob.expect("NOTICE ROOM Dev alice").await;
    let exists = "ERR ROOM_EXISTS Dev already exists; JR joins it";
    check(&mut alice, "CR Dev", exists).await;
    check(&mut alice, "CR dev", exists).await;
    check(&mut bob, "CR DEV", exists).await;
    check(&mut bob, "LRS", "LRS Dev").await;
    // bob was not put into the room by the refused CR.
    check(&mut bob, "LRU dev", "LRU Dev alice").await;
    for client in [&mut alice, &mut bob] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn jr_and_lr_are_seen_by_the_other_members() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol, mut dave] =
        guests(&server, ["alice", "bob", "carol", "dave"]).await;
    check(&mut alice, "CR dev", "OK CR dev").await;
    for client in [&mut bob, &mut carol, &mut dave] {
        client.expect("NOTICE ROOM dev alice").await;
    }

    check(&mut bob, "JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    // Another case joins the same room, named as created.
    check(&mut carol, "JR DEV", "OK JR dev").await;
    alice.expect("JR dev carol").await;
    bob.expect("JR dev carol").await;
    check(&mut dave, "LRU Dev", "LRU dev alice bob carol").await;

    check(&mut bob, "LR dev", "OK LR dev").await;
    alice.expect("LR dev bob").await;
    carol.expect("LR dev bob").await;
    check(&mut carol, "LR Dev", "OK LR dev").await;
    alice.expect("LR dev carol").await;
    check(&mut dave, "LRU dev", "LRU dev alice").await;
    // The one who leaves, and a non-member, see no room lines.
    for client in [&mut alice, &mut bob, &mut carol, &mut dave] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn room_errors() {
    let server = ServerProcess::start();
    let [mut alice, mut bob] = guests(&server, ["alice", "bob"]).await;
    let no_such = "ERR NO_SUCH_ROOM there is no room nope; CR creates it";
    check(&mut alice, "JR nope", no_such).await;
    check(&mut alice, "LR nope", no_such).await;
    check(&mut alice, "LRU nope", no_such).await;
    check(&mut alice, "RM nope hello", no_such).await;

    check(&mut alice, "CR dev", "OK CR dev").await;
    bob.expect("NOTICE ROOM dev alice").await;
    check(&mut alice, "JR dev", "ERR ALREADY_IN_ROOM you are in dev").await;
    check(&mut alice, "JR DEV", "ERR ALREADY_IN_ROOM you are in dev").await;
    // A room with members that bob is not in.
    check(&mut bob, "LR dev", "ERR NOT_IN_ROOM you are not in dev").await;
    check(&mut bob, "RM dev hi", "ERR NOT_IN_ROOM you are not in dev").await;
    alice.expect_silence(QUIET).await;
    check(&mut bob, "LRU dev", "LRU dev alice").await;

    // An empty room: nobody is in it.
    check(&mut alice, "LR dev", "OK LR dev").await;
    check(&mut alice, "LR dev", "ERR NOT_IN_ROOM you are not in dev").await;
    check(
        &mut alice,
        "RM dev anyone?",
        "ERR NOT_IN_ROOM you are not in dev",
    )
    .await;
    check(&mut bob, "LRU dev", "LRU dev").await;
    for client in [&mut alice, &mut bob] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn rm_reaches_the_other_members_only() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol, mut dave] =
        guests(&server, ["alice", "bob", "carol", "dave"]).await;
    check(&mut alice, "CR dev", "OK CR dev").await;
    for client in [&mut bob, &mut carol, &mut dave] {
        client.expect("NOTICE ROOM dev alice").await;
    }
    check(&mut bob, "JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    check(&mut carol, "CR ops", "OK CR ops").await;
    for client in [&mut alice, &mut bob, &mut dave] {
        client.expect("NOTICE ROOM ops carol").await;
    }

    check(&mut alice, "RM dev hello  team, RM ops x", "OK RM dev").await;
    bob.expect("RM dev alice hello  team, RM ops x").await;
    check(&mut bob, "RM DEV back", "OK RM dev").await;
    alice.expect("RM dev bob back").await;
    check(&mut carol, "RM ops alone", "OK RM ops").await;
    for client in [&mut alice, &mut bob, &mut carol, &mut dave] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn lrs_lists_rooms_sorted() {
    let server = ServerProcess::start();
    let [mut alice, mut bob] = guests(&server, ["alice", "bob"]).await;
    check(&mut bob, "LRS", "LRS").await;
    for room in ["gamma", "Alpha", "beta"] {
        check(&mut alice, &format!("CR {room}"), &format!("OK CR {room}")).await;
        bob.expect(&format!("NOTICE ROOM {room} alice")).await;
    }
    check(&mut bob, "LRS", "LRS Alpha beta gamma").await;
    check(&mut alice, "lrs", "LRS Alpha beta gamma").await;
}

#[tokio::test]
async fn lru_lists_members_sorted() {
    let server = ServerProcess::start();
    let [mut carol, mut alice, mut bob] = guests(&server, ["carol", "alice", "Bob"]).await;
    check(&mut carol, "CR dev", "OK CR dev").await;
    alice.expect("NOTICE ROOM dev carol").await;
    bob.expect("NOTICE ROOM dev carol").await;
    check(&mut alice, "JR dev", "OK JR dev").await;
    carol.expect("JR dev alice").await;
    check(&mut bob, "JR dev", "OK JR dev").await;
    carol.expect("JR dev Bob").await;
    alice.expect("JR dev Bob").await;
    check(&mut carol, "LRU dev", "LRU dev alice Bob carol").await;
}

// ---------------------------------------------------------------------------------------------
// Verb spelling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn verbs_are_case_insensitive_and_may_have_a_prefix() {
    let server = ServerProcess::start();
    let mut alice = server.connect().await;
    check(&mut alice, ":NiCk alice", "OK NICK alice").await;
    let mut bob = server.connect().await;
    check(&mut bob, "/nick bob", "OK NICK bob").await;
    alice.expect("NOTICE ONLINE bob").await;

    check(&mut alice, ":pm bob hi", "OK PM bob").await;
    bob.expect("PM alice hi").await;
    check(&mut alice, "/Msg all", "OK MSG").await;
    bob.expect("MSG alice all").await;
    check(&mut bob, ":users", "USERS alice bob").await;
    check(&mut alice, "/cr dev", "OK CR dev").await;
    bob.expect("NOTICE ROOM dev alice").await;
    check(&mut bob, "/JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    check(&mut bob, ":Lrs", "LRS dev").await;
    check(&mut bob, "lru dev", "LRU dev alice bob").await;
    check(&mut bob, ":rm dev yo", "OK RM dev").await;
    alice.expect("RM dev bob yo").await;
    check(&mut bob, "/lr dev", "OK LR dev").await;
    alice.expect("LR dev bob").await;
    check(&mut alice, "/ping x", "PONG x").await;
    alice.send(":help /nick").await;
    alice.expect("HELP NICK <name> - log in as a guest").await;
    alice.expect("OK HELP").await;
    quit(bob, "/quit later").await;
    alice.expect("NOTICE OFFLINE bob QUIT later").await;
    alice.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------------
// Leaving: QUIT and dropped connections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn quit_closes_and_notifies_the_others() {
    let server = ServerProcess::start();
    let [mut alice, bob, mut carol] = guests(&server, ["alice", "bob", "carol"]).await;
    quit(bob, "QUIT").await;
    alice.expect("NOTICE OFFLINE bob QUIT").await;
    carol.expect("NOTICE OFFLINE bob QUIT").await;
    quit(carol, "QUIT gone for  lunch").await;
    alice
        .expect("NOTICE OFFLINE carol QUIT gone for  lunch")
        .await;
    alice.expect_silence(QUIET).await;
    check(&mut alice, "USERS", "USERS alice").await;
}

#[tokio::test]
async fn a_dropped_connection_goes_offline() {
    let server = ServerProcess::start();
    let [mut alice, bob] = guests(&server, ["alice", "bob"]).await;
    drop(bob);
    alice.expect("NOTICE OFFLINE bob CLOSED").await;
    check(&mut alice, "USERS", "USERS alice").await;

    // A half-close is a goodbye too: the server finishes and closes its side.
    let mut carol = server.guest("carol").await;
    alice.expect("NOTICE ONLINE carol").await;
    carol.shutdown_write().await;
    assert_eq!(carol.expect_closed().await, Vec::<String>::new());
    alice.expect("NOTICE OFFLINE carol CLOSED").await;
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_name_is_free_again_once_its_user_left() {
    let server = ServerProcess::start();
    let [mut observer, bob, carol] = guests(&server, ["observer", "bob", "carol"]).await;
    quit(bob, "QUIT").await;
    observer.expect("NOTICE OFFLINE bob QUIT").await;
    drop(carol);
    observer.expect("NOTICE OFFLINE carol CLOSED").await;
    let mut bob = server.connect().await;
    check(&mut bob, "NICK BOB", "OK NICK BOB").await;
    observer.expect("NOTICE ONLINE BOB").await;
    let mut carol = server.connect().await;
    check(&mut carol, "NICK carol", "OK NICK carol").await;
    observer.expect("NOTICE ONLINE carol").await;
    bob.expect("NOTICE ONLINE carol").await;
}

/// Puts `leaver` in `dev` and `ops`, `alice` in `dev` only and `carol` in `ops` only; `dave`
/// is online but in no room. Returns nothing unread anywhere.
async fn two_rooms(alice: &mut Client, leaver: &mut Client, carol: &mut Client, dave: &mut Client) {
    check(alice, "CR dev", "OK CR dev").await;
    for client in [&mut *leaver, &mut *carol, &mut *dave] {
        client.expect("NOTICE ROOM dev alice").await;
    }
    check(carol, "CR ops", "OK CR ops").await;
    for client in [&mut *alice, &mut *leaver, &mut *dave] {
        client.expect("NOTICE ROOM ops carol").await;
    }
    check(leaver, "JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    check(leaver, "JR OPS", "OK JR ops").await;
    carol.expect("JR ops bob").await;
    check(dave, "LRU dev", "LRU dev alice bob").await;
    check(dave, "LRU ops", "LRU ops bob carol").await;
}

/// After bob left the server one way or another: he is out of both rooms and the rooms still
/// work for those who stayed.
async fn bob_is_gone(alice: &mut Client, carol: &mut Client, dave: &mut Client, offline: &str) {
    expect_unordered(alice, &["LR dev bob", offline]).await;
    expect_unordered(carol, &["LR ops bob", offline]).await;
    dave.expect(offline).await;
    check(dave, "LRU dev", "LRU dev alice").await;
    check(dave, "LRU ops", "LRU ops carol").await;
    check(dave, "USERS", "USERS alice carol dave").await;
    check(alice, "RM dev still here", "OK RM dev").await;
    check(carol, "RM ops me too", "OK RM ops").await;
    for client in [alice, carol, dave] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn quit_leaves_every_room() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol, mut dave] =
        guests(&server, ["alice", "bob", "carol", "dave"]).await;
    two_rooms(&mut alice, &mut bob, &mut carol, &mut dave).await;
    quit(bob, "QUIT").await;
    bob_is_gone(&mut alice, &mut carol, &mut dave, "NOTICE OFFLINE bob QUIT").await;
}

#[tokio::test]
async fn quit_with_reason_leaves_every_room() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol, mut dave] =
        guests(&server, ["alice", "bob", "carol", "dave"]).await;
    two_rooms(&mut alice, &mut bob, &mut carol, &mut dave).await;
    quit(bob, "QUIT see you").await;
    bob_is_gone(
        &mut alice,
        &mut carol,
        &mut dave,
        "NOTICE OFFLINE bob QUIT see you",
    )
    .await;
}

#[tokio::test]
async fn a_dropped_connection_leaves_every_room() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol, mut dave] =
        guests(&server, ["alice", "bob", "carol", "dave"]).await;
    two_rooms(&mut alice, &mut bob, &mut carol, &mut dave).await;
    drop(bob);
    bob_is_gone(
        &mut alice,
        &mut carol,
        &mut dave,
        "NOTICE OFFLINE bob CLOSED",
    )
    .await;
}

#[tokio::test]
async fn rooms_left_with_lr_are_not_left_again_on_quit() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol, mut dave] =
        guests(&server, ["alice", "bob", "carol", "dave"]).await;
    two_rooms(&mut alice, &mut bob, &mut carol, &mut dave).await;
    check(&mut bob, "LR Dev", "OK LR dev").await;
    alice.expect("LR dev bob").await;
    // bob comes back to dev while alice is there, then quits: one LR per room he was in.
    check(&mut bob, "JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    check(&mut bob, "LR ops", "OK LR ops").await;
    carol.expect("LR ops bob").await;
    quit(bob, "QUIT").await;
    expect_unordered(&mut alice, &["LR dev bob", "NOTICE OFFLINE bob QUIT"]).await;
    carol.expect("NOTICE OFFLINE bob QUIT").await;
    dave.expect("NOTICE OFFLINE bob QUIT").await;
    check(&mut dave, "LRU dev", "LRU dev alice").await;
    check(&mut dave, "LRU ops", "LRU ops carol").await;
    for client in [&mut alice, &mut carol, &mut dave] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn a_returning_user_is_not_in_the_rooms_of_the_old_session() {
    let server = ServerProcess::start();
    let [mut alice, mut bob, mut carol, mut dave] =
        guests(&server, ["alice", "bob", "carol", "dave"]).await;
    two_rooms(&mut alice, &mut bob, &mut carol, &mut dave).await;
    drop(bob);
    bob_is_gone(
        &mut alice,
        &mut carol,
        &mut dave,
        "NOTICE OFFLINE bob CLOSED",
    )
    .await;
    let mut bob = server.guest("bob").await;
    for client in [&mut alice, &mut carol, &mut dave] {
        client.expect("NOTICE ONLINE bob").await;
    }
    check(&mut bob, "RM dev hi", "ERR NOT_IN_ROOM you are not in dev").await;
    check(&mut bob, "LR ops", "ERR NOT_IN_ROOM you are not in ops").await;
    check(&mut alice, "RM dev private", "OK RM dev").await;
    check(&mut bob, "JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    check(&mut alice, "RM dev welcome back", "OK RM dev").await;
    bob.expect("RM dev alice welcome back").await;
    for client in [&mut alice, &mut bob, &mut carol, &mut dave] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn the_last_member_leaving_by_lr_keeps_the_room() {
    let server = ServerProcess::start();
    let [mut alice, mut bob] = guests(&server, ["alice", "bob"]).await;
    check(&mut alice, "CR dev", "OK CR dev").await;
    bob.expect("NOTICE ROOM dev alice").await;
    check(&mut alice, "LR dev", "OK LR dev").await;
    check(&mut bob, "LRS", "LRS dev").await;
    check(&mut bob, "LRU dev", "LRU dev").await;
    check(
        &mut alice,
        "CR dev",
        "ERR ROOM_EXISTS dev already exists; JR joins it",
    )
    .await;

    // The creator comes back, then somebody else joins: the room works as before.
    check(&mut alice, "JR dev", "OK JR dev").await;
    check(&mut bob, "LRU dev", "LRU dev alice").await;
    check(&mut bob, "JR DEV", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    check(&mut bob, "RM dev hi", "OK RM dev").await;
    alice.expect("RM dev bob hi").await;
    check(&mut alice, "RM dev hello", "OK RM dev").await;
    bob.expect("RM dev alice hello").await;
    for client in [&mut alice, &mut bob] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn the_last_member_leaving_by_quit_or_drop_keeps_the_room() {
    let server = ServerProcess::start();
    let [mut observer, alice, bob] = guests(&server, ["observer", "alice", "bob"]).await;
    let mut alice = alice;
    let mut bob = bob;
    check(&mut alice, "CR dev", "OK CR dev").await;
    observer.expect("NOTICE ROOM dev alice").await;
    bob.expect("NOTICE ROOM dev alice").await;
    check(&mut bob, "CR ops", "OK CR ops").await;
    observer.expect("NOTICE ROOM ops bob").await;
    alice.expect("NOTICE ROOM ops bob").await;

    quit(alice, "QUIT").await;
    observer.expect("NOTICE OFFLINE alice QUIT").await;
    bob.expect("NOTICE OFFLINE alice QUIT").await;
    drop(bob);
    observer.expect("NOTICE OFFLINE bob CLOSED").await;

    check(&mut observer, "LRS", "LRS dev ops").await;
    check(&mut observer, "LRU dev", "LRU dev").await;
    check(&mut observer, "LRU ops", "LRU ops").await;

    // Both empty rooms can be joined again, and deliver to their new members.
    check(&mut observer, "JR dev", "OK JR dev").await;
    check(&mut observer, "JR ops", "OK JR ops").await;
    let mut alice = server.guest("alice").await;
    observer.expect("NOTICE ONLINE alice").await;
    check(&mut alice, "JR dev", "OK JR dev").await;
    observer.expect("JR dev alice").await;
    check(&mut alice, "RM dev back", "OK RM dev").await;
    observer.expect("RM dev alice back").await;
    check(&mut observer, "RM ops echo", "OK RM ops").await;
    check(&mut alice, "LRU ops", "LRU ops observer").await;
    for client in [&mut alice, &mut observer] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn leaving_and_rejoining_quickly_keeps_the_room_working() {
    let server = ServerProcess::start();
    let [mut alice, mut bob] = guests(&server, ["alice", "bob"]).await;
    check(&mut alice, "CR dev", "OK CR dev").await;
    bob.expect("NOTICE ROOM dev alice").await;
    // Each leave empties the room, and the rejoin races the server's clean-up of it.
    for _ in 0..50 {
        alice.send("LR dev").await;
        alice.send("JR dev").await;
        alice.expect("OK LR dev").await;
        alice.expect("OK JR dev").await;
    }
    check(&mut bob, "LRU dev", "LRU dev alice").await;
    check(&mut bob, "JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    check(&mut bob, "RM dev ping", "OK RM dev").await;
    alice.expect("RM dev bob ping").await;
    check(&mut alice, "RM dev pong", "OK RM dev").await;
    bob.expect("RM dev alice pong").await;
    for client in [&mut alice, &mut bob] {
        client.expect_silence(QUIET).await;
    }
}

#[tokio::test]
async fn pm_to_yourself_is_delivered() {
    let server = ServerProcess::start();
    let [mut alice, mut bob] = guests(&server, ["Alice", "bob"]).await;
    alice.send("PM alice note to  self").await;
    alice.expect("PM Alice note to  self").await;
    alice.expect("OK PM Alice").await;
    bob.expect_silence(QUIET).await;
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn lines_after_quit_are_ignored() {
    let server = ServerProcess::start();
    let [mut alice, mut bob] = guests(&server, ["alice", "bob"]).await;
    check(&mut bob, "CR dev", "OK CR dev").await;
    alice.expect("NOTICE ROOM dev bob").await;
    // Sent in one write: the server must stop at QUIT.
    bob.send_raw(b"QUIT done\nMSG ghost\nCR ghosts\n").await;
    bob.expect("OK QUIT").await;
    assert_eq!(bob.expect_closed().await, Vec::<String>::new());
    alice.expect("NOTICE OFFLINE bob QUIT done").await;
    alice.expect_silence(QUIET).await;
    check(&mut alice, "LRS", "LRS dev").await;
    check(&mut alice, "LRU dev", "LRU dev").await;
}
