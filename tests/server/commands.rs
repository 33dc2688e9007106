//! Every command of the protocol, over real TCP against the server in this process: the exact `OK` and
//! `ERR` lines, and every delivery and notification the other clients see.
//!
//! Ordering: a test only asserts an order between two lines when the server guarantees it. The
//! clients are driven one at a time (each waits for its reply before the next acts), and the
//! `NOTICE ONLINE` lines that logins cause are read by the clients already online. The one
//! place where the server gives no order is a disconnect: the `LR` lines come from the rooms
//! and the `NOTICE OFFLINE` from the user table, two independent actors, so those are compared
//! as a set ([`expect_unordered`]).

use crate::support::{Client, NOT_LOGGED_IN, Server, ServerProcess, TestServer, all_caught_up};
use linechat_protocol::Verb;

const BAD_CHARACTER: &str = "a name may hold only letters A-Z, digits, '_' and '-'";

/// The `ERR` line for a command whose verb is `verb`, which is none of the protocol's.
fn unknown_command(verb: &str) -> String {
    format!("ERR UNKNOWN_COMMAND unknown command \"{verb}\"; HELP lists the commands")
}

/// The `ERR` line for a command that lacks an argument; `usage` is its verb's usage line.
fn missing(usage: &str) -> String {
    format!("ERR BAD_ARGUMENTS missing argument; usage: {usage}")
}

/// The `ERR` line for a command with an argument too many; `usage` is its verb's usage line.
fn too_many(usage: &str) -> String {
    format!("ERR BAD_ARGUMENTS too many arguments; usage: {usage}")
}

// ---------------------------------------------------------------------------------------------
// Before login: greeting, PING, HELP, QUIT, refusals
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn greeting_is_the_documented_hello_line() {
    let server = TestServer::start();
    let mut client = Client::connect(server.addr).await;
    client
        .expect(&format!(
            "HELLO linechat {} - log in with LOGIN <name> <password>, \
             REGISTER <name> <password> or NICK <name>; HELP lists the commands",
            env!("CARGO_PKG_VERSION")
        ))
        .await;
    client.expect_caught_up().await;
}

#[tokio::test]
async fn ping_answers_pong_with_and_without_token() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    client.check("PING", "PONG").await;
    client.check("PING 42", "PONG 42").await;
    client.check("PING two  words", "PONG two  words").await;
    // Separators around the line are not part of the token.
    client.check("  PING   padded  ", "PONG padded").await;

    client.check("NICK alice", "OK NICK alice").await;
    client.check("PING", "PONG").await;
    client.check("PING after-login", "PONG after-login").await;
    client.expect_caught_up().await;
}

#[tokio::test]
async fn help_lists_one_line_per_verb_then_ok() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    for logged_in in [false, true] {
        client.send("HELP").await;
        // Every verb of the protocol's table, in its order (the wording is pinned by the
        // protocol crate's tests and `help_for_one_verb`).
        for verb in Verb::ALL {
            client.expect(&format!("HELP {}", verb.usage())).await;
        }
        client.expect("OK HELP").await;
        if !logged_in {
            client.check("NICK alice", "OK NICK alice").await;
        }
    }
    client.expect_caught_up().await;
}

#[tokio::test]
async fn help_for_one_verb() {
    let server = TestServer::start();
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
    client
        .check_all(&[
            ("HELP nope", &unknown_command("nope")),
            ("HELP pm msg", &too_many("HELP [verb] - this help")),
        ])
        .await;
    client.expect_caught_up().await;
}

#[tokio::test]
async fn unknown_commands_and_bad_arguments() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    client
        .check_all(&[
            ("FROB x", &unknown_command("FROB")),
            ("::pm bob hi", &unknown_command("::pm")),
        ])
        .await;
    // Blank lines are ignored, not errors.
    client.send("").await;
    client.send("   ").await;
    client.check("PING still-here", "PONG still-here").await;

    client.check("NICK alice", "OK NICK alice").await;
    client
        .check_all(&[
            ("MSG", &missing("MSG <text> - message everyone online")),
            ("PM bob", &missing("PM <user> <text> - private message")),
            ("USERS all", &too_many("USERS - list who is online")),
            ("CR", &missing("CR <room> - create a room and join it")),
            ("JR a b", &too_many("JR <room> - join a room")),
            ("LRS x", &too_many("LRS - list rooms")),
            (
                "RM dev",
                &missing("RM <room> <text> - message a room you are in"),
            ),
        ])
        .await;
    client.expect_caught_up().await;
}

#[tokio::test]
async fn chat_commands_before_login_are_refused() {
    let server = TestServer::start();
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
        client.check(command, NOT_LOGGED_IN).await;
    }
    // Nothing of that reached anyone, and no room was made.
    observer.expect_caught_up().await;
    observer.check("LRS", "LRS").await;
    observer.check("USERS", "USERS observer").await;

    // The refused connection can still log in.
    client.check("NICK alice", "OK NICK alice").await;
    observer.expect("NOTICE ONLINE alice").await;
    client.check("USERS", "USERS alice observer").await;
}

#[tokio::test]
async fn quit_before_login_closes_without_notice() {
    let server = TestServer::start();
    let mut observer = server.guest("observer").await;
    let client = server.connect().await;
    client.quit().await;
    let client = server.connect().await;
    client.quit_with("QUIT bye now").await;
    observer.check("USERS", "USERS observer").await;
    let _sync = server
        .expect_no_presence("sync", &mut [&mut observer])
        .await;
}

// ---------------------------------------------------------------------------------------------
// Login: NICK, REGISTER, LOGIN
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn nick_logs_in_and_announces_to_others_only() {
    let server = TestServer::start();
    let mut alice = server.connect().await;
    alice.check("NICK alice", "OK NICK alice").await;
    let mut waiting = server.connect().await; // connected, not logged in
    let mut bob = server.connect().await;
    bob.check("NICK Bob", "OK NICK Bob").await;
    alice.expect("NOTICE ONLINE Bob").await;
    bob.check("USERS", "USERS alice Bob").await;
    // Neither another notice for alice nor one about himself for Bob; nothing for `waiting`
    // in the notices sent so far.
    let _sync = server
        .expect_no_presence("carol", &mut [&mut alice, &mut bob])
        .await;
    waiting.expect_caught_up().await;
}

/// A guest `observer`, and a client that registered `name` with `password` once the observer
/// was online (the observer read its `NOTICE ONLINE`).
async fn observer_and_account(server: &TestServer, name: &str, password: &str) -> [Client; 2] {
    let [mut observer] = server.guests(["observer"]).await;
    let account = server
        .register_seen(name, password, &mut [&mut observer])
        .await;
    [observer, account]
}

#[tokio::test]
async fn register_logs_in_and_announces() {
    let server = TestServer::start();
    let [mut observer, mut alice] = observer_and_account(&server, "alice", "s3cret words").await;
    alice.check("USERS", "USERS alice observer").await;
    alice.msg("hi", &mut [&mut observer]).await;
}

#[tokio::test]
async fn login_with_right_and_wrong_password() {
    let server = TestServer::start();
    let [mut observer, alice] = observer_and_account(&server, "alice", "s3cret words").await;
    alice.quit_seen(&mut [&mut observer]).await;

    let mut client = server.connect().await;
    for wrong in [
        "LOGIN alice wrong",
        "LOGIN alice s3cret",
        "LOGIN alice S3CRET WORDS",
    ] {
        client
            .check(wrong, "ERR BAD_PASSWORD wrong name or password")
            .await;
    }
    // A failed login leaves the connection logged out.
    client.check("USERS", NOT_LOGGED_IN).await;
    observer.expect_caught_up().await;

    client
        .check("LOGIN alice s3cret words", "OK LOGIN alice")
        .await;
    observer.expect("NOTICE ONLINE alice").await;
    client.check("USERS", "USERS alice observer").await;
}

#[tokio::test]
async fn login_to_an_unknown_account_is_a_bad_password() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    client
        .check(
            "LOGIN nobody whatever",
            "ERR BAD_PASSWORD wrong name or password",
        )
        .await;
    client.check("USERS", NOT_LOGGED_IN).await;
    // The failed login did not create or reserve the name.
    client.check("NICK nobody", "OK NICK nobody").await;
}

#[tokio::test]
async fn login_in_another_case_gets_the_registered_spelling() {
    let server = TestServer::start();
    let [mut observer, alice] = observer_and_account(&server, "Alice", "pw").await;
    alice.quit_seen(&mut [&mut observer]).await;

    let mut alice = server.connect().await;
    alice.check("LOGIN aLICE pw", "OK LOGIN Alice").await;
    observer.expect("NOTICE ONLINE Alice").await;
    observer.check("USERS", "USERS Alice observer").await;
    alice.check("MSG hello", "OK MSG").await;
    observer.expect("MSG Alice hello").await;
    alice
        .check("NICK x", "ERR ALREADY_LOGGED_IN you are logged in as Alice")
        .await;
}

#[tokio::test]
async fn register_refuses_taken_names() {
    let server = TestServer::start();
    let [mut bob] = server.guests(["bob"]).await;
    let alice = server.register_seen("alice", "pw", &mut [&mut bob]).await;

    let mut client = server.connect().await;
    // A registered account, online (then the name is in use) or not, in any case.
    let taken = |name: &str| format!("ERR NAME_TAKEN {name} is already registered");
    client.check("REGISTER ALICE other", &taken("ALICE")).await;
    alice.quit_seen(&mut [&mut bob]).await;
    client.check("REGISTER alice other", &taken("alice")).await;
    // A guest online under that name, in any case.
    client
        .check_all(&[
            ("REGISTER BOB pw", "ERR NAME_TAKEN BOB is online already"),
            ("USERS", NOT_LOGGED_IN),
        ])
        .await;
    bob.expect_caught_up().await;

    // The refused REGISTER of the guest's name created no account: once bob is gone, the
    // name is free for a guest again.
    bob.quit().await;
    let mut watcher = server.guest("watcher").await;
    let _bob = server.guest_seen("bob", &mut [&mut watcher]).await;
}

#[tokio::test]
async fn guest_names_are_unique_regardless_of_case() {
    let server = TestServer::start();
    let [mut alice] = server.guests(["alice"]).await;
    let mut client = server.connect().await;
    client
        .check_all(&[
            ("NICK Alice", "ERR NAME_TAKEN Alice is online already"),
            ("NICK ALICE", "ERR NAME_TAKEN ALICE is online already"),
            ("USERS", NOT_LOGGED_IN),
        ])
        .await;
    alice.expect_caught_up().await;
    // Still free to pick another name.
    client.check("NICK alice2", "OK NICK alice2").await;
    alice.expect("NOTICE ONLINE alice2").await;
    alice.check("USERS", "USERS alice alice2").await;
}

#[tokio::test]
async fn nick_of_a_registered_account_is_taken() {
    let server = TestServer::start();
    let [mut observer, alice] = observer_and_account(&server, "alice", "pw").await;

    let mut client = server.connect().await;
    let taken = |name: &str| format!("ERR NAME_TAKEN {name} is a registered account; use LOGIN");
    client.check("NICK alice", &taken("alice")).await;
    // Also while the account is offline, and in another case.
    alice.quit_seen(&mut [&mut observer]).await;
    client.check("NICK ALICE", &taken("ALICE")).await;
    client.check("USERS", NOT_LOGGED_IN).await;
    let _sync = server
        .expect_no_presence("sync", &mut [&mut observer])
        .await;
}

#[tokio::test]
async fn login_while_online_elsewhere_takes_the_session_over() {
    let server = TestServer::start();
    let [mut observer, mut first] = observer_and_account(&server, "alice", "pw").await;

    // A wrong password changes nothing.
    let mut second = server.connect().await;
    second
        .check(
            "LOGIN alice wrong",
            "ERR BAD_PASSWORD wrong name or password",
        )
        .await;
    first.check("USERS", "USERS alice observer").await;
    // The right one, in any case, takes the account over: the first connection is told and
    // closed, and nobody else hears of it.
    second.check("LOGIN ALICE pw", "OK LOGIN alice").await;
    assert_eq!(
        first.expect_closed().await,
        ["NOTICE CLOSING REPLACED you logged in on another connection"]
    );
    second.check("USERS", "USERS alice observer").await;
    let _sync = server
        .expect_no_presence("sync", &mut [&mut observer, &mut second])
        .await;
    observer.check("PM alice still you?", "OK PM alice").await;
    second.expect("PM observer still you?").await;
}

#[tokio::test]
async fn login_verbs_after_login_are_refused() {
    let server = TestServer::start();
    let [mut alice, mut observer] = server.guests(["alice", "observer"]).await;
    for command in [
        "NICK other",
        "NICK alice",
        "REGISTER carol pw",
        "LOGIN alice pw",
    ] {
        alice
            .check(command, "ERR ALREADY_LOGGED_IN you are logged in as alice")
            .await;
    }
    alice.check("USERS", "USERS alice observer").await;
    let _sync = server
        .expect_no_presence("sync", &mut [&mut observer, &mut alice])
        .await;
    // The refused REGISTER created no account: carol is free for a guest.
    let _carol = server.guest("carol").await;

    let mut dave = server.register("dave", "pw").await;
    for command in ["NICK x", "REGISTER y pw", "LOGIN dave pw"] {
        dave.check(command, "ERR ALREADY_LOGGED_IN you are logged in as dave")
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

async fn check_guests_disabled(server: &impl Server) {
    // Neither the greeting nor HELP offers what the server refuses.
    let mut client = Client::connect(server.addr()).await;
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
    let disabled = "ERR GUESTS_DISABLED guests are not allowed here; REGISTER or LOGIN";
    client
        .check_all(&[
            ("NICK alice", disabled),
            (
                "USERS",
                "ERR NOT_LOGGED_IN log in first: LOGIN <name> <password> or REGISTER <name> <password>",
            ),
            // Accounts still work, on the same connection.
            ("REGISTER alice pw", "OK REGISTER alice"),
            ("USERS", "USERS alice"),
        ])
        .await;
    let mut bob = server.connect().await;
    bob.check("NICK bob", disabled).await;
    bob.check("REGISTER bob pw", "OK REGISTER bob").await;
    bob.logged_in_as("bob");
    client.expect("NOTICE ONLINE bob").await;
    bob.quit_seen(&mut [&mut client]).await;
    let _bob = server.login("bob", "pw", &["OK LOGIN bob"]).await;
    client.expect("NOTICE ONLINE bob").await;
}

#[tokio::test]
async fn bad_names_are_refused() {
    let server = TestServer::start();
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
        client
            .check(
                command,
                &format!("ERR BAD_NAME bad name {name:?}: {BAD_CHARACTER}"),
            )
            .await;
    }
    client
        .check(
            &format!("NICK {too_long}"),
            &format!("ERR BAD_NAME bad name \"{too_long}\": a name is at most 32 characters"),
        )
        .await;
    client
        .check_all(&[
            ("NICK", &missing("NICK <name> - log in as a guest")),
            (
                "NICK two words",
                &too_many("NICK <name> - log in as a guest"),
            ),
            (
                "REGISTER alice",
                &missing("REGISTER <name> <password> - create an account and log in"),
            ),
            ("USERS", NOT_LOGGED_IN),
        ])
        .await;

    // The longest name, and every allowed character, are fine.
    let longest = "b".repeat(32);
    client
        .check(&format!("NICK {longest}"), &format!("OK NICK {longest}"))
        .await;
    let mut other = server.guest_seen("Al_1-x", &mut [&mut client]).await;

    // Names of users and rooms in chat commands are checked the same way.
    for command in [
        "PM a.b hi",
        "CR a.b",
        "JR a.b",
        "LR a.b",
        "LRU a.b",
        "RM a.b hi",
    ] {
        client
            .check(
                command,
                &format!("ERR BAD_NAME bad name \"a.b\": {BAD_CHARACTER}"),
            )
            .await;
    }
    client.check("LRS", "LRS").await;
    other.expect_caught_up().await;
}

// ---------------------------------------------------------------------------------------------
// MSG, PM, USERS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn msg_reaches_everyone_else() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = server.guests(["alice", "bob", "carol"]).await;
    let mut lurker = server.connect().await; // not logged in: gets nothing
    alice.msg("hello world", &mut [&mut bob, &mut carol]).await;

    // Inner spacing and tabs are kept; the separators after the verb and at the ends are not.
    bob.check("MSG   spaced   out\ttext  ", "OK MSG").await;
    alice.expect("MSG bob spaced   out\ttext").await;
    carol.expect("MSG bob spaced   out\ttext").await;

    // Text that looks like a command is just text.
    carol
        .msg("PM alice : /QUIT", &mut [&mut alice, &mut bob])
        .await;

    all_caught_up(&mut [&mut alice, &mut bob, &mut carol, &mut lurker]).await;
}

#[tokio::test]
async fn pm_reaches_only_its_target() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = server.guests(["alice", "Bob", "carol"]).await;
    alice.pm(&mut bob, "hi  there, Bob").await;
    // The target in any case; the OK names them as they are online.
    alice.check("PM bob again", "OK PM Bob").await;
    bob.expect("PM alice again").await;
    bob.check("PM ALICE back", "OK PM alice").await;
    alice.expect("PM Bob back").await;
    all_caught_up(&mut [&mut alice, &mut bob, &mut carol]).await;

    // Nobody by that name online.
    let no_such = |name: &str| format!("ERR NO_SUCH_USER {name} is neither online nor registered");
    alice.check("PM dave hello", &no_such("dave")).await;
    carol.quit_seen(&mut [&mut alice, &mut bob]).await;
    alice
        .check("PM carol still there?", &no_such("carol"))
        .await;
    all_caught_up(&mut [&mut alice, &mut bob]).await;
}

#[tokio::test]
async fn users_lists_who_is_online_sorted() {
    let server = TestServer::start();
    let [mut carol, bob, mut alice] = server.guests(["carol", "Bob", "alice"]).await;
    carol.check("USERS", "USERS alice Bob carol").await;
    alice.check("users", "USERS alice Bob carol").await;
    bob.quit_seen(&mut [&mut carol, &mut alice]).await;
    carol.check("USERS", "USERS alice carol").await;
}

// ---------------------------------------------------------------------------------------------
// Rooms: CR, JR, LR, LRS, LRU, RM
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cr_creates_joins_and_notifies_everyone_else() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = server.guests(["alice", "bob", "carol"]).await;
    alice.check("LRS", "LRS").await;
    alice.create_room("dev", &mut [&mut bob, &mut carol]).await;
    alice.expect_caught_up().await;
    alice.check("LRS", "LRS dev").await;
    bob.check("LRU dev", "LRU dev alice").await;
    // The creator is a member: RM works at once.
    alice.rm("dev", "first", &mut []).await;
    all_caught_up(&mut [&mut alice, &mut bob, &mut carol]).await;
}

#[tokio::test]
async fn cr_of_an_existing_room_is_refused_in_any_case() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    alice.create_room("Dev", &mut [&mut bob]).await;
    let exists = "ERR ROOM_EXISTS Dev already exists; JR joins it";
    alice.check("CR Dev", exists).await;
    alice.check("CR dev", exists).await;
    bob.check("CR DEV", exists).await;
    bob.check("LRS", "LRS Dev").await;
    // bob was not put into the room by the refused CR.
    bob.check("LRU dev", "LRU Dev alice").await;
    all_caught_up(&mut [&mut alice, &mut bob]).await;
}

/// Guests alice, bob, carol and dave, with alice and bob in `dev`, which alice created.
/// Nothing is unread anywhere.
async fn dev_room(server: &TestServer) -> [Client; 4] {
    let [mut alice, mut bob, mut carol, mut dave] =
        server.guests(["alice", "bob", "carol", "dave"]).await;
    alice
        .create_room("dev", &mut [&mut bob, &mut carol, &mut dave])
        .await;
    bob.join("dev", &mut [&mut alice]).await;
    [alice, bob, carol, dave]
}

#[tokio::test]
async fn jr_and_lr_are_seen_by_the_other_members() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol, mut dave] = dev_room(&server).await;
    // Another case joins the same room, named as created.
    carol.check("JR DEV", "OK JR dev").await;
    alice.expect("JR dev carol").await;
    bob.expect("JR dev carol").await;
    dave.check("LRU Dev", "LRU dev alice bob carol").await;

    bob.leave("dev", &mut [&mut alice, &mut carol]).await;
    carol.check("LR Dev", "OK LR dev").await;
    alice.expect("LR dev carol").await;
    dave.check("LRU dev", "LRU dev alice").await;
    // The one who leaves, and a non-member, see no room lines.
    all_caught_up(&mut [&mut alice, &mut bob, &mut carol, &mut dave]).await;
}

#[tokio::test]
async fn room_errors() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    let no_such = "ERR NO_SUCH_ROOM there is no room nope; CR creates it";
    for command in ["JR nope", "LR nope", "LRU nope", "RM nope hello"] {
        alice.check(command, no_such).await;
    }

    alice.create_room("dev", &mut [&mut bob]).await;
    let already_in = "ERR ALREADY_IN_ROOM you are in dev";
    alice
        .check_all(&[("JR dev", already_in), ("JR DEV", already_in)])
        .await;
    // A room with members that bob is not in.
    let not_in = "ERR NOT_IN_ROOM you are not in dev";
    bob.check_all(&[("LR dev", not_in), ("RM dev hi", not_in)])
        .await;
    alice.expect_caught_up().await;
    bob.check("LRU dev", "LRU dev alice").await;

    // An empty room: nobody is in it.
    alice
        .check_all(&[
            ("LR dev", "OK LR dev"),
            ("LR dev", not_in),
            ("RM dev anyone?", not_in),
        ])
        .await;
    bob.check("LRU dev", "LRU dev").await;
    all_caught_up(&mut [&mut alice, &mut bob]).await;
}

#[tokio::test]
async fn rm_reaches_the_other_members_only() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol, mut dave] = dev_room(&server).await;
    carol
        .create_room("ops", &mut [&mut alice, &mut bob, &mut dave])
        .await;

    alice
        .rm("dev", "hello  team, RM ops x", &mut [&mut bob])
        .await;
    bob.check("RM DEV back", "OK RM dev").await;
    alice.expect("RM dev bob back").await;
    carol.rm("ops", "alone", &mut []).await;
    all_caught_up(&mut [&mut alice, &mut bob, &mut carol, &mut dave]).await;
}

#[tokio::test]
async fn lrs_lists_rooms_sorted() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    bob.check("LRS", "LRS").await;
    for room in ["gamma", "Alpha", "beta"] {
        alice.create_room(room, &mut [&mut bob]).await;
    }
    bob.check("LRS", "LRS Alpha beta gamma").await;
    alice.check("lrs", "LRS Alpha beta gamma").await;
}

#[tokio::test]
async fn lru_lists_members_sorted() {
    let server = TestServer::start();
    let [mut carol, mut alice, mut bob] = server.guests(["carol", "alice", "Bob"]).await;
    carol.create_room("dev", &mut [&mut alice, &mut bob]).await;
    alice.join("dev", &mut [&mut carol]).await;
    bob.join("dev", &mut [&mut carol, &mut alice]).await;
    carol.check("LRU dev", "LRU dev alice Bob carol").await;
}

// ---------------------------------------------------------------------------------------------
// Verb spelling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn verbs_are_case_insensitive_and_may_have_a_prefix() {
    let server = TestServer::start();
    let mut alice = server.connect().await;
    alice.check(":NiCk alice", "OK NICK alice").await;
    let mut bob = server.connect().await;
    bob.check("/nick bob", "OK NICK bob").await;
    alice.expect("NOTICE ONLINE bob").await;

    alice.check(":pm bob hi", "OK PM bob").await;
    bob.expect("PM alice hi").await;
    alice.check("/Msg all", "OK MSG").await;
    bob.expect("MSG alice all").await;
    bob.check(":users", "USERS alice bob").await;
    alice.check("/cr dev", "OK CR dev").await;
    bob.expect("NOTICE ROOM dev alice").await;
    bob.check("/JR dev", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    bob.check(":Lrs", "LRS dev").await;
    bob.check("lru dev", "LRU dev alice bob").await;
    bob.check(":rm dev yo", "OK RM dev").await;
    alice.expect("RM dev bob yo").await;
    bob.check("/lr dev", "OK LR dev").await;
    alice.expect("LR dev bob").await;
    alice.check("/ping x", "PONG x").await;
    alice.send(":help /nick").await;
    alice.expect("HELP NICK <name> - log in as a guest").await;
    alice.expect("OK HELP").await;
    bob.quit_with("/quit later").await;
    alice.expect("NOTICE OFFLINE bob QUIT later").await;
    alice.expect_caught_up().await;
}

// ---------------------------------------------------------------------------------------------
// Leaving: QUIT and dropped connections
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn quit_closes_and_notifies_the_others() {
    let server = TestServer::start();
    let [mut alice, bob, mut carol] = server.guests(["alice", "bob", "carol"]).await;
    bob.quit_seen(&mut [&mut alice, &mut carol]).await;
    carol.quit_with("QUIT gone for  lunch").await;
    alice
        .expect("NOTICE OFFLINE carol QUIT gone for  lunch")
        .await;
    alice.expect_caught_up().await;
    alice.check("USERS", "USERS alice").await;
}

#[tokio::test]
async fn a_dropped_connection_goes_offline() {
    let server = TestServer::start();
    let [mut alice, bob] = server.guests(["alice", "bob"]).await;
    drop(bob);
    alice.expect("NOTICE OFFLINE bob CLOSED").await;
    alice.check("USERS", "USERS alice").await;

    // A half-close is a goodbye too: the server finishes and closes its side.
    let mut carol = server.guest_seen("carol", &mut [&mut alice]).await;
    carol.shutdown_write().await;
    assert_eq!(carol.expect_closed().await, Vec::<String>::new());
    alice.expect("NOTICE OFFLINE carol CLOSED").await;
    alice.expect_caught_up().await;
}

#[tokio::test]
async fn a_name_is_free_again_once_its_user_left() {
    let server = TestServer::start();
    let [mut observer, bob, carol] = server.guests(["observer", "bob", "carol"]).await;
    bob.quit_seen(&mut [&mut observer]).await;
    drop(carol);
    observer.expect("NOTICE OFFLINE carol CLOSED").await;
    let mut bob = server.guest_seen("BOB", &mut [&mut observer]).await;
    let _carol = server
        .guest_seen("carol", &mut [&mut observer, &mut bob])
        .await;
}

/// Guests alice, bob, carol and dave: bob in `dev` and `ops`, alice in `dev` only and carol in
/// `ops` only; dave is online but in no room. Nothing is unread anywhere.
async fn two_rooms(server: &TestServer) -> [Client; 4] {
    let [mut alice, mut bob, mut carol, mut dave] = dev_room(server).await;
    carol
        .create_room("ops", &mut [&mut alice, &mut bob, &mut dave])
        .await;
    bob.check("JR OPS", "OK JR ops").await;
    carol.expect("JR ops bob").await;
    dave.check("LRU dev", "LRU dev alice bob").await;
    dave.check("LRU ops", "LRU ops bob carol").await;
    [alice, bob, carol, dave]
}

/// After bob left the server one way or another: he is out of both rooms and the rooms still
/// work for those who stayed.
async fn bob_is_gone(alice: &mut Client, carol: &mut Client, dave: &mut Client, offline: &str) {
    alice.expect_unordered(&["LR dev bob", offline]).await;
    carol.expect_unordered(&["LR ops bob", offline]).await;
    dave.expect(offline).await;
    dave.check("LRU dev", "LRU dev alice").await;
    dave.check("LRU ops", "LRU ops carol").await;
    dave.check("USERS", "USERS alice carol dave").await;
    alice.rm("dev", "still here", &mut []).await;
    carol.rm("ops", "me too", &mut []).await;
    all_caught_up(&mut [alice, carol, dave]).await;
}

#[tokio::test]
async fn quit_leaves_every_room() {
    let server = TestServer::start();
    let [mut alice, bob, mut carol, mut dave] = two_rooms(&server).await;
    bob.quit().await;
    bob_is_gone(&mut alice, &mut carol, &mut dave, "NOTICE OFFLINE bob QUIT").await;
}

#[tokio::test]
async fn quit_with_reason_leaves_every_room() {
    let server = TestServer::start();
    let [mut alice, bob, mut carol, mut dave] = two_rooms(&server).await;
    bob.quit_with("QUIT see you").await;
    let offline = "NOTICE OFFLINE bob QUIT see you";
    bob_is_gone(&mut alice, &mut carol, &mut dave, offline).await;
}

#[tokio::test]
async fn rooms_left_with_lr_are_not_left_again_on_quit() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol, mut dave] = two_rooms(&server).await;
    bob.check("LR Dev", "OK LR dev").await;
    alice.expect("LR dev bob").await;
    // bob comes back to dev while alice is there, then quits: one LR per room he was in.
    bob.join("dev", &mut [&mut alice]).await;
    bob.leave("ops", &mut [&mut carol]).await;
    bob.quit().await;
    alice
        .expect_unordered(&["LR dev bob", "NOTICE OFFLINE bob QUIT"])
        .await;
    carol.expect("NOTICE OFFLINE bob QUIT").await;
    dave.expect("NOTICE OFFLINE bob QUIT").await;
    dave.check("LRU dev", "LRU dev alice").await;
    dave.check("LRU ops", "LRU ops carol").await;
    all_caught_up(&mut [&mut alice, &mut carol, &mut dave]).await;
}

/// A dropped connection leaves every room, and the user, back on a new connection, is in none
/// of the old session's rooms.
#[tokio::test]
async fn a_dropped_connection_leaves_every_room_and_a_returning_user_is_in_none() {
    let server = TestServer::start();
    let [mut alice, bob, mut carol, mut dave] = two_rooms(&server).await;
    drop(bob);
    bob_is_gone(
        &mut alice,
        &mut carol,
        &mut dave,
        "NOTICE OFFLINE bob CLOSED",
    )
    .await;
    let mut bob = server
        .guest_seen("bob", &mut [&mut alice, &mut carol, &mut dave])
        .await;
    bob.check_all(&[
        ("RM dev hi", "ERR NOT_IN_ROOM you are not in dev"),
        ("LR ops", "ERR NOT_IN_ROOM you are not in ops"),
    ])
    .await;
    alice.rm("dev", "private", &mut []).await;
    bob.join("dev", &mut [&mut alice]).await;
    alice.rm("dev", "welcome back", &mut [&mut bob]).await;
    all_caught_up(&mut [&mut alice, &mut bob, &mut carol, &mut dave]).await;
}

#[tokio::test]
async fn the_last_member_leaving_by_lr_keeps_the_room() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    alice.create_room("dev", &mut [&mut bob]).await;
    alice.check("LR dev", "OK LR dev").await;
    bob.check("LRS", "LRS dev").await;
    bob.check("LRU dev", "LRU dev").await;
    alice
        .check("CR dev", "ERR ROOM_EXISTS dev already exists; JR joins it")
        .await;

    // The creator comes back, then somebody else joins: the room works as before.
    alice.check("JR dev", "OK JR dev").await;
    bob.check("LRU dev", "LRU dev alice").await;
    bob.check("JR DEV", "OK JR dev").await;
    alice.expect("JR dev bob").await;
    bob.rm("dev", "hi", &mut [&mut alice]).await;
    alice.rm("dev", "hello", &mut [&mut bob]).await;
    all_caught_up(&mut [&mut alice, &mut bob]).await;
}

#[tokio::test]
async fn the_last_member_leaving_by_quit_or_drop_keeps_the_room() {
    let server = TestServer::start();
    let [mut observer, mut alice, mut bob] = server.guests(["observer", "alice", "bob"]).await;
    alice
        .create_room("dev", &mut [&mut observer, &mut bob])
        .await;
    bob.create_room("ops", &mut [&mut observer, &mut alice])
        .await;

    alice.quit_seen(&mut [&mut observer, &mut bob]).await;
    drop(bob);
    observer.expect("NOTICE OFFLINE bob CLOSED").await;

    observer.check("LRS", "LRS dev ops").await;
    observer.check("LRU dev", "LRU dev").await;
    observer.check("LRU ops", "LRU ops").await;

    // Both empty rooms can be joined again, and deliver to their new members.
    observer.join("dev", &mut []).await;
    observer.join("ops", &mut []).await;
    let mut alice = server.guest_seen("alice", &mut [&mut observer]).await;
    alice.join("dev", &mut [&mut observer]).await;
    alice.rm("dev", "back", &mut [&mut observer]).await;
    observer.rm("ops", "echo", &mut []).await;
    alice.check("LRU ops", "LRU ops observer").await;
    all_caught_up(&mut [&mut alice, &mut observer]).await;
}

#[tokio::test]
async fn leaving_and_rejoining_quickly_keeps_the_room_working() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    alice.create_room("dev", &mut [&mut bob]).await;
    // Each leave empties the room, and the rejoin races the server's clean-up of it.
    for _ in 0..50 {
        alice.send("LR dev").await;
        alice.send("JR dev").await;
        alice.expect("OK LR dev").await;
        alice.expect("OK JR dev").await;
    }
    bob.check("LRU dev", "LRU dev alice").await;
    bob.join("dev", &mut [&mut alice]).await;
    bob.rm("dev", "ping", &mut [&mut alice]).await;
    alice.rm("dev", "pong", &mut [&mut bob]).await;
    all_caught_up(&mut [&mut alice, &mut bob]).await;
}

#[tokio::test]
async fn pm_to_yourself_is_delivered() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["Alice", "bob"]).await;
    alice.send("PM alice note to  self").await;
    alice.expect("PM Alice note to  self").await;
    alice.expect("OK PM Alice").await;
    all_caught_up(&mut [&mut bob, &mut alice]).await;
}

#[tokio::test]
async fn lines_after_quit_are_ignored() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    bob.create_room("dev", &mut [&mut alice]).await;
    // Sent in one write: the server must stop at QUIT.
    bob.send_raw(b"QUIT done\nMSG ghost\nCR ghosts\n").await;
    bob.expect("OK QUIT").await;
    assert_eq!(bob.expect_closed().await, Vec::<String>::new());
    alice.expect("NOTICE OFFLINE bob QUIT done").await;
    alice.expect_caught_up().await;
    alice.check("LRS", "LRS dev").await;
    alice.check("LRU dev", "LRU dev").await;
}
