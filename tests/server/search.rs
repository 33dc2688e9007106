//! `SEARCH`: the messages of a conversation one may read (global, a room one is in, one's own
//! private conversation with a user) that hold all the words, newest first, as `HIST` lines.

use crate::support::{Client, Server, TestServer};
use linechat_protocol::Stamp;

/// The `HIST` lines up to the final `OK SEARCH <n>`: each without its time (`HIST <target>
/// <from> <text>`), and the count.
async fn results(client: &mut Client, command: &str) -> (Vec<String>, String) {
    client.send(command).await;
    let mut lines = Vec::new();
    loop {
        let line = client.line().await;
        if !line.starts_with("HIST ") {
            return (lines, line);
        }
        let mut words = line.splitn(4, ' ');
        let (hist, target, _time, rest) = (
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
            words.next().unwrap(),
        );
        lines.push(format!("{hist} {target} {rest}"));
    }
}

fn usage() -> &'static str {
    "usage: SEARCH <*|room|user> <words> [LIMIT <count>] - the messages of a conversation \
     with all these words, newest first: a word, \"a phrase\" or prefix*"
}

#[tokio::test]
async fn search_reads_what_one_may_read_newest_first() {
    let server = TestServer::start();
    let [mut alice, mut bob, mut carol] = server.guests(["alice", "bob", "carol"]).await;
    alice.create_room("Dev", &mut [&mut bob, &mut carol]).await;
    bob.join("Dev", &mut [&mut alice]).await;
    bob.check("RM dev deploy the rocket today", "OK RM Dev")
        .await;
    alice.expect("RM Dev bob deploy the rocket today").await;
    alice
        .check("RM dev Rocket-launch at noon", "OK RM Dev")
        .await;
    bob.expect("RM Dev alice Rocket-launch at noon").await;
    bob.check("MSG rocket for everyone", "OK MSG").await;
    alice.expect("MSG bob rocket for everyone").await;
    carol.expect("MSG bob rocket for everyone").await;
    alice.pm(&mut bob, "our rocket, privately").await;
    bob.pm(&mut carol, "a rocket secret alice never reads")
        .await;

    assert_eq!(
        results(&mut alice, "SEARCH dev rocket").await,
        (
            vec![
                "HIST dev alice Rocket-launch at noon".into(),
                "HIST dev bob deploy the rocket today".into()
            ],
            "OK SEARCH 2".into()
        )
    );
    assert_eq!(
        results(&mut alice, "SEARCH dev \"rocket launch\"").await,
        (
            vec!["HIST dev alice Rocket-launch at noon".into()],
            "OK SEARCH 1".into()
        )
    );
    assert_eq!(
        results(&mut alice, "search DEV roc* tod* LIMIT 5").await,
        (
            vec!["HIST DEV bob deploy the rocket today".into()],
            "OK SEARCH 1".into()
        )
    );
    assert_eq!(
        results(&mut alice, "SEARCH dev rocket LIMIT 1").await.1,
        "OK SEARCH 1"
    );
    assert_eq!(
        results(&mut alice, "SEARCH * rocket").await,
        (
            vec!["HIST * bob rocket for everyone".into()],
            "OK SEARCH 1".into()
        )
    );
    assert_eq!(
        results(&mut alice, "SEARCH bob rocket").await,
        (
            vec!["HIST bob alice our rocket, privately".into()],
            "OK SEARCH 1".into()
        )
    );
    // Bob's private conversation with carol is theirs alone.
    assert_eq!(
        results(&mut alice, "SEARCH carol rocket").await,
        (vec![], "OK SEARCH 0".into())
    );
    assert_eq!(
        results(&mut alice, "SEARCH carol secret").await,
        (vec![], "OK SEARCH 0".into())
    );
    assert_eq!(
        results(&mut carol, "SEARCH bob secret").await,
        (
            vec!["HIST bob bob a rocket secret alice never reads".into()],
            "OK SEARCH 1".into()
        )
    );
    // A room one is not in (any more) is refused, as HISTORY refuses it.
    carol
        .check("SEARCH dev rocket", "ERR NOT_IN_ROOM you are not in Dev")
        .await;
    alice.leave("Dev", &mut [&mut bob]).await;
    alice
        .check("SEARCH dev rocket", "ERR NOT_IN_ROOM you are not in Dev")
        .await;
}

#[tokio::test]
async fn bad_searches_are_refused_with_the_usage() {
    let server = TestServer::start();
    let [mut alice] = server.guests(["alice"]).await;
    let usage = usage();
    alice
        .check_all(&[
            (
                "SEARCH",
                &format!("ERR BAD_ARGUMENTS missing argument; {usage}"),
            ),
            (
                "SEARCH *",
                &format!("ERR BAD_ARGUMENTS missing argument; {usage}"),
            ),
            (
                "SEARCH * LIMIT 5",
                &format!("ERR BAD_ARGUMENTS missing argument; {usage}"),
            ),
            (
                "SEARCH * word LIMIT",
                &format!("ERR BAD_ARGUMENTS missing argument; {usage}"),
            ),
            (
                "SEARCH * word LIMIT many",
                &format!(
                    "ERR BAD_ARGUMENTS \"many\" is not a count: use a whole number from 1; \
                     {usage}"
                ),
            ),
            (
                "SEARCH * word LIMIT 101",
                &format!("ERR BAD_ARGUMENTS at most 100 results; {usage}"),
            ),
            (
                "SEARCH * !!! ...",
                &format!(
                    "ERR BAD_ARGUMENTS no word to search for (words are letters and digits); \
                     {usage}"
                ),
            ),
            (
                "SEARCH * \"open phrase",
                &format!("ERR BAD_ARGUMENTS a phrase's closing quote is missing; {usage}"),
            ),
            (
                "SEARCH * mid*dle",
                &format!("ERR BAD_ARGUMENTS \"mid*dle\": '*' may only end a word; {usage}"),
            ),
            (
                "SEARCH nobody word",
                "ERR NO_SUCH_USER nobody is neither a room you are in nor a user",
            ),
        ])
        .await;
    // Words the engines would read as syntax are only words.
    alice
        .check("SEARCH * a OR b NEAR(c) x:*", "OK SEARCH 0")
        .await;
}

#[tokio::test]
async fn results_are_stamped_with_the_ids_of_their_live_lines() {
    let server = TestServer::start();
    let [mut alice, mut bob] = server.guests(["alice", "bob"]).await;
    bob.check("OPTION ids on", "OK OPTION ids on").await;
    alice.check("MSG needle one", "OK MSG").await;
    let first = Stamp::split(&bob.line().await).unwrap().0.unwrap();
    alice.check("MSG needle two", "OK MSG").await;
    let second = Stamp::split(&bob.line().await).unwrap().0.unwrap();
    bob.send("SEARCH * needle").await;
    for (stamp, text) in [(second, "two"), (first, "one")] {
        let line = bob.line().await;
        let (found, rest) = Stamp::split(&line).unwrap();
        assert_eq!(found, Some(stamp));
        let time = humantime::format_rfc3339_millis(stamp.at);
        assert_eq!(rest, format!("HIST * {time} alice needle {text}"));
    }
    bob.expect("OK SEARCH 2").await;
}
