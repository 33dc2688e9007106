//! What IRC users send and get as text: the text rules of protocol.md §8 hold on the IRC port
//! (every text an IRC user writes for others, messages, topics, away messages, quit and part
//! reasons, is held to the line protocol's check, IRC formatting removed first; nothing a
//! client sends comes back to anyone with its control characters), and lists and targets
//! are never cut or dropped without a word.

use super::raw::{Raw, bob_and_ann_in_dev, server};
use crate::support::Server;

/// Escape sequences that would retitle a terminal, clear it and colour what follows, IRC
/// formatting, and one of each other kind of character §8 refuses: a lone CR, BEL, DEL, a C1
/// control, a direction override, a zero-width space and a line separator.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mfake: root logged in \
                       \u{2}bold\u{2} \u{3}04red\u{f} a\rb\u{7f}\u{85}\u{202E}\u{200B}\u{2028}end";

/// [`HOSTILE`] as it reaches others: formatting removed, every other refused character
/// replaced with U+FFFD.
const CLEANED: &str = "\u{FFFD}]0;owned\u{FFFD}\u{FFFD}[2J\u{FFFD}[31mfake: root logged in \
                       bold red a\u{FFFD}b\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}end";

#[tokio::test]
async fn a_quit_reason_reaches_everyone_without_what_the_text_rules_refuse() {
    let server = server();
    let mut bob = server.guest("bob").await;
    let mut carol = Raw::guest(&server, "carol").await;
    bob.expect("NOTICE ONLINE carol").await;
    let mut qesc = Raw::guest(&server, "qesc").await;
    bob.expect("NOTICE ONLINE qesc").await;
    carol.expect(":qesc!qesc@linechat JOIN #global").await;

    qesc.send(&format!("QUIT :{HOSTILE}")).await;
    assert_eq!(
        qesc.until_closed().await,
        [format!("ERROR :Closing link: Quit: {CLEANED}")]
    );
    bob.expect(&format!("NOTICE OFFLINE qesc QUIT {CLEANED}"))
        .await;
    carol
        .expect(&format!(":qesc!qesc@linechat QUIT :Quit: {CLEANED}"))
        .await;

    // A reason of nothing but formatting and blanks is no reason.
    let mut dee = Raw::guest(&server, "dee").await;
    bob.expect("NOTICE ONLINE dee").await;
    carol.expect(":dee!dee@linechat JOIN #global").await;
    dee.send("QUIT :\u{2}\u{2}  \u{f}").await;
    dee.until_closed().await;
    bob.expect("NOTICE OFFLINE dee QUIT").await;
    carol.expect(":dee!dee@linechat QUIT :Quit").await;
}

#[tokio::test]
async fn a_part_reason_is_cleaned_too() {
    let server = server();
    let (mut bob, mut ann) = bob_and_ann_in_dev(&server).await;
    ann.send(&format!("PART #dev :{HOSTILE}")).await;
    ann.expect(&format!(":ann!ann@linechat PART #dev :{CLEANED}"))
        .await;
    bob.expect("LR dev ann").await;
    ann.send("PART #global :\u{1b}[2Jbye").await;
    ann.expect(":ann!ann@linechat PART #global :\u{FFFD}[2Jbye")
        .await;
}

#[tokio::test]
async fn an_away_message_follows_the_text_rules() {
    let server = server();
    let mut ann = Raw::guest(&server, "ann").await;
    for (text, why) in [
        ("\u{1b}[2Jgone", "control characters are not allowed"),
        (
            "brb \u{202E}txt.exe",
            "invisible or direction-changing character U+202E is not allowed",
        ),
        (
            "\u{FFF9}shown\u{FFFA}hidden\u{FFFB}",
            "invisible or direction-changing character U+FFF9 is not allowed",
        ),
    ] {
        ann.send(&format!("AWAY :{text}")).await;
        ann.expect(&format!(
            ":irc.test NOTICE ann :away message not set: {why}"
        ))
        .await;
    }
    ann.send("WHOIS ann").await;
    let whois = ann.until(" 318 ann ann ").await;
    assert!(!whois.contains(" 301 "));
    assert!(ann.caught_up().await.is_empty(), "no away message was set");

    // Formatting is removed, as from messages.
    ann.send("AWAY :\u{2}at lunch\u{2}  ").await;
    ann.expect(":irc.test 306 ann :You have been marked as being away")
        .await;
    ann.send("WHOIS ann").await;
    ann.until(" 312 ann ann ").await;
    ann.expect(":irc.test 301 ann ann :at lunch").await;
}

#[tokio::test]
async fn topics_and_messages_are_refused_with_what_the_text_rules_refuse() {
    let server = server();
    let (mut bob, mut ann) = bob_and_ann_in_dev(&server).await;
    for text in [HOSTILE, "\u{FFF9}a\u{FFFA}b\u{FFFB}", "x\u{FFFF}"] {
        ann.send(&format!("TOPIC #dev :{text}")).await;
        let refused = ann.line().await;
        assert!(
            refused.starts_with(":irc.test NOTICE ann :topic not set: "),
            "{refused:?}"
        );
        ann.send(&format!("PRIVMSG #dev,bob :{text}")).await;
        let refused = ann.line().await;
        assert!(
            refused.starts_with(":irc.test NOTICE ann :message not sent: "),
            "{refused:?}"
        );
    }
    assert!(ann.caught_up().await.is_empty());
    // Nothing of it reached bob, who sees what comes next.
    ann.send("PRIVMSG #dev :\u{2}fine\u{2}").await;
    bob.expect("RM dev ann fine").await;
    bob.check("TOPIC dev", "TOPIC dev").await;
}

/// Asserts that an IRC line holds nothing the text rules refuse: no escape sequence or other
/// control character, no invisible or direction-changing character.
fn assert_clean(line: &str) {
    assert_eq!(linechat_protocol::check_text(line), Ok(()), "{line:?}");
}

#[tokio::test]
async fn nothing_a_client_sends_comes_back_with_its_control_characters() {
    let server = server();
    let mut ann = Raw::guest(&server, "ann").await;

    // An unknown verb is named in 421, without what it should not hold.
    ann.send("\u{1b}[2J\u{7}bogus x").await;
    ann.expect(":irc.test 421 ann \u{FFFD}[2J\u{FFFD}BOGUS :Unknown command")
        .await;
    ann.send("\u{202E}\u{85}evil").await;
    ann.expect(":irc.test 421 ann \u{FFFD}\u{FFFD}EVIL :Unknown command")
        .await;

    // Nor does any other answer that names what the client sent.
    for line in [
        "PRIVMSG \u{1b}[2Jbob :hi",
        "PRIVMSG #\u{1b}[31m :hi",
        "JOIN #\u{1b}]0;owned\u{7}",
        "PART #\u{1b}[2J",
        "NAMES #\u{1b}[2J",
        "TOPIC #\u{1b}[2J",
        "WHOIS \u{1b}[2J\u{202E}",
        "WHO \u{1b}[2J",
        "MODE #\u{1b}[2J",
        "NICK \u{1b}[2J",
        "CAP REQ :\u{1b}[2J",
        "CAP \u{1b}[2J",
        "PING :\u{1b}[2J\u{2028}",
        "USER\u{1b}[2J",
    ] {
        ann.send(line).await;
        let answers = ann.caught_up().await;
        assert!(!answers.is_empty(), "{line:?} is answered");
        for answer in answers {
            assert_clean(&answer);
        }
    }
}

/// The names of a list reply (`353`, `319`, `302`, `303`): the lines of `code` among
/// `lines`, each `:irc.test <code> <nick> <params...> :<words>`, their words together.
fn listed(lines: &[String], code: &str, nick: &str, params: &str) -> Vec<String> {
    let head = format!(":irc.test {code} {nick} {params}:");
    let mut words = Vec::new();
    for line in lines
        .iter()
        .filter(|line| line.contains(&format!(" {code} ")))
    {
        let listed = line
            .strip_prefix(&head)
            .unwrap_or_else(|| panic!("{line:?} is not {head:?}..."));
        assert!(!listed.is_empty(), "{line:?}");
        words.extend(listed.split(' ').map(str::to_owned));
    }
    words
}

/// Every line up to the one holding `part`, that one included.
async fn through(irc: &mut Raw, part: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = irc.line().await;
        assert!(!line.is_empty(), "closed before {part:?}; read {lines:?}");
        let last = line.contains(part);
        lines.push(line);
        if last {
            return lines;
        }
    }
}

fn sorted(mut words: Vec<String>) -> Vec<String> {
    words.sort_by_key(|word| word.to_ascii_lowercase());
    words
}

#[tokio::test]
async fn long_lists_go_out_in_as_many_lines_as_they_need_and_no_name_is_cut() {
    let server = super::raw::server_with(|settings| settings.rooms_created_per_minute = 100);
    // Names of 32 characters, the longest there are, the IRC user's too.
    let long = |prefix: &str, n: usize| format!("{prefix}{n:02}{}", "x".repeat(29));
    let me = long("i", 0);
    let mut irc = Raw::guest(&server, &me).await;
    irc.send("JOIN #big").await;
    irc.until(&format!(" 366 {me} #big ")).await;
    let mut guests = Vec::new();
    let mut names = vec![me.clone()];
    for n in 0..46 {
        let name = long("g", n);
        let mut guest = server.guest(&name).await;
        guest.check("JR big", "OK JR big").await;
        guests.push(guest);
        names.push(name);
    }
    let names = sorted(names);

    irc.send("NAMES #big").await;
    let lines = through(&mut irc, &format!(" 366 {me} #big ")).await;
    let members = listed(&lines, "353", &me, "= #big ");
    assert_eq!(sorted(members), names, "every member of #big, whole");
    irc.send("NAMES #global").await;
    let lines = through(&mut irc, &format!(" 366 {me} #global ")).await;
    let online = listed(&lines, "353", &me, "= #global ");
    assert_eq!(sorted(online), names, "everyone online, whole");

    // ISON and USERHOST of as many as fit in a line, all online.
    let asked = &names[1..16];
    irc.send(&format!("ISON {}", asked.join(" "))).await;
    let lines = irc.caught_up().await;
    assert_eq!(listed(&lines, "303", &me, ""), asked);
    irc.send(&format!("USERHOST {}", asked[..5].join(" ")))
        .await;
    let lines = irc.caught_up().await;
    let hosts: Vec<String> = asked[..5]
        .iter()
        .map(|name| format!("{name}=+{name}@linechat"))
        .collect();
    assert_eq!(listed(&lines, "302", &me, ""), hosts);

    // The user's own WHOIS lists every channel they are in.
    let mut channels = vec!["#big".to_owned()];
    for n in 0..20 {
        let channel = format!("#{}", long("r", n));
        irc.send(&format!("JOIN {channel}")).await;
        irc.until(&format!(" 366 {me} {channel} ")).await;
        channels.push(channel);
    }
    irc.send(&format!("WHOIS {me}")).await;
    let lines = through(&mut irc, &format!(" 318 {me} {me} ")).await;
    let whois = listed(&lines, "319", &me, &format!("{me} "));
    assert_eq!(sorted(whois), sorted(channels));
}

#[tokio::test]
async fn a_message_to_more_targets_than_targmax_says_which_it_did_not_reach() {
    let server = server();
    let mut irc = Raw::connect(&server).await;
    irc.send("NICK ann").await;
    irc.send("USER ann 0 * :Ann").await;
    let isupport = irc.until(" 005 ann ").await;
    assert!(isupport.contains(",NOTICE:4,"), "{isupport}");
    assert!(isupport.contains(",PRIVMSG:4,"), "{isupport}");
    irc.until(" 366 ann #global ").await;
    let [mut bob, mut cid, mut dee, mut eve, mut fay] =
        server.guests(["bob", "cid", "dee", "eve", "fay"]).await;
    irc.until(":fay!fay@linechat JOIN #global").await;

    irc.send("PRIVMSG bob,cid,,dee,eve,fay,gus :hi all").await;
    irc.expect(":irc.test 407 ann fay :Too many targets").await;
    assert!(irc.caught_up().await.is_empty());
    for first in [&mut bob, &mut cid, &mut dee, &mut eve] {
        first.expect("PM ann hi all").await;
    }
    // A NOTICE is never answered with an error (RFC 2812 §3.3.2): the fifth is dropped
    // without a word.
    irc.send("NOTICE bob,cid,dee,eve,fay :psst").await;
    assert!(irc.caught_up().await.is_empty());
    for first in [&mut bob, &mut cid, &mut dee, &mut eve] {
        first.expect("PM ann psst").await;
    }
    fay.check("PING x", "PONG x").await;
}
