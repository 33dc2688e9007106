//! The parser's tests: every verb, the errors, and properties (any command reparses to
//! itself; no line panics).

use super::*;
use crate::name::MAX_NAME_LEN;
use proptest::prelude::*;

fn name(raw: &str) -> Name {
    Name::parse(raw).unwrap()
}

/// Parses a line that must hold a command.
fn parse(line: &str) -> Command {
    match Command::parse(line) {
        Ok(Some(command)) => command,
        other => panic!("{line:?} parsed to {other:?}"),
    }
}

fn time(raw: &str) -> std::time::SystemTime {
    humantime::parse_rfc3339(raw).unwrap()
}

fn parse_err(line: &str) -> ParseError {
    match Command::parse(line) {
        Err(error) => error,
        other => panic!("{line:?} should fail, parsed to {other:?}"),
    }
}

fn bad_name(raw: &str, error: NameError) -> ParseError {
    ParseError::BadName {
        name: raw.into(),
        error,
    }
}

#[test]
fn parses_every_verb_with_its_arguments() {
    let cases = [
        (
            "REGISTER alice s3cret",
            Command::Register {
                name: name("alice"),
                password: Password::new("s3cret"),
            },
        ),
        (
            "LOGIN alice s3cret",
            Command::Login {
                name: name("alice"),
                password: Password::new("s3cret"),
            },
        ),
        ("NICK bob", Command::Nick { name: name("bob") }),
        (
            "AWAY at  lunch",
            Command::Away {
                message: Some("at  lunch".into()),
            },
        ),
        ("AWAY", Command::Away { message: None }),
        (
            "OPTION ids off",
            Command::SetOption {
                option: ConnectionOption::Ids(false),
            },
        ),
        (
            "MSG hello",
            Command::Msg {
                text: "hello".into(),
            },
        ),
        (
            "PM bob hi",
            Command::Pm {
                to: name("bob"),
                text: "hi".into(),
            },
        ),
        ("USERS", Command::Users {}),
        (
            "CR lobby",
            Command::CreateRoom {
                room: name("lobby"),
            },
        ),
        (
            "JR lobby",
            Command::JoinRoom {
                room: name("lobby"),
            },
        ),
        (
            "LR lobby",
            Command::LeaveRoom {
                room: name("lobby"),
            },
        ),
        ("LRS", Command::ListRooms {}),
        (
            "LRU lobby",
            Command::ListRoomUsers {
                room: name("lobby"),
            },
        ),
        (
            "RM lobby hi",
            Command::RoomMessage {
                room: name("lobby"),
                text: "hi".into(),
            },
        ),
        ("PING", Command::Ping { token: None }),
        ("HELP", Command::Help { verb: None }),
        ("QUIT", Command::Quit { reason: None }),
        (
            "TOPIC dev",
            Command::Topic {
                room: Name::parse("dev").unwrap(),
                text: None,
            },
        ),
        (
            "TOPIC dev release  on Friday",
            Command::Topic {
                room: Name::parse("dev").unwrap(),
                text: Some("release  on Friday".into()),
            },
        ),
        (
            "PONG x1",
            Command::Pong {
                token: Some("x1".into()),
            },
        ),
        (
            "HISTORY *",
            Command::History {
                target: HistoryTarget::Global,
                page: HistoryPage::Latest,
                count: None,
            },
        ),
        (
            "HISTORY Dev 20",
            Command::History {
                target: HistoryTarget::Named(Name::parse("Dev").unwrap()),
                page: HistoryPage::Latest,
                count: Some(20),
            },
        ),
        (
            "HISTORY dev BEFORE 1042 20",
            Command::History {
                target: HistoryTarget::Named(name("dev")),
                page: HistoryPage::Before(Bound::Id(1042)),
                count: Some(20),
            },
        ),
        (
            "HISTORY * AFTER 2026-12-08T10:15:00.123Z",
            Command::History {
                target: HistoryTarget::Global,
                page: HistoryPage::After(Bound::Time(time("2026-12-08T10:15:00.123Z"))),
                count: None,
            },
        ),
        (
            "HISTORY bob BETWEEN 2026-12-08T10:15:00Z 7 3",
            Command::History {
                target: HistoryTarget::Named(name("bob")),
                page: HistoryPage::Between(Bound::Time(time("2026-12-08T10:15:00Z")), Bound::Id(7)),
                count: Some(3),
            },
        ),
    ];
    for (line, expected) in cases {
        let command = parse(line);
        assert_eq!(command, expected, "{line:?}");
        assert_eq!(command.to_string(), line, "canonical form of {line:?}");
    }
}

/// Every verb, including one added to the table later, parses as its usage line says, with
/// and without its optional arguments, and writes itself back the same.
#[test]
fn every_verb_parses_as_its_usage_says() {
    for verb in Verb::ALL {
        let usage = verb.usage();
        let arguments = usage
            .strip_prefix(verb.as_str())
            .and_then(|rest| rest.split(" - ").next())
            .expect("usage starts with the verb");
        let sample = |with_optional: bool| {
            let mut line = verb.as_str().to_owned();
            for placeholder in placeholders(arguments) {
                let value = match placeholder {
                    "[count]" => "7",
                    "[verb]" => "PM",
                    "<*|room|user>" => "lobby",
                    "<on|off>" => "on",
                    "[LATEST|BEFORE <bound>|AFTER <bound>|BETWEEN <bound> <bound>]" => {
                        "BETWEEN 12 2026-12-08T10:15:00.123Z"
                    }
                    "[id|time]" => "2026-12-08T10:15:00.123Z",
                    // A literal word of the usage stands for itself.
                    "ids" => "ids",
                    optional if optional.starts_with('[') => "some words",
                    // Names fit every name rule; text is the last argument, so one word
                    // does for any other placeholder.
                    _ => "alice",
                };
                if with_optional || !placeholder.starts_with('[') {
                    line.push(' ');
                    line.push_str(value);
                }
            }
            line
        };
        for line in [sample(true), sample(false)] {
            let command = parse(&line);
            assert_eq!(command.verb(), verb, "{line:?}");
            assert_eq!(command.to_string(), line, "canonical form of {line:?}");
        }
    }
}

/// The placeholders of a usage line: its words, except that an optional group in brackets
/// (`[LATEST|BEFORE <bound>|...]`) is one placeholder, spaces and all.
fn placeholders(arguments: &str) -> Vec<&str> {
    let mut placeholders = Vec::new();
    let (mut depth, mut start) = (0, None);
    for (at, c) in arguments.char_indices() {
        match c {
            ' ' if depth == 0 => {
                if let Some(from) = start.take() {
                    placeholders.push(&arguments[from..at]);
                }
                continue;
            }
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        start.get_or_insert(at);
    }
    placeholders.extend(start.map(|from| &arguments[from..]));
    placeholders
}

#[test]
fn verbs_ignore_case_and_one_leading_colon_or_slash() {
    for verb in Verb::ALL {
        let upper = verb.as_str();
        let lower = upper.to_ascii_lowercase();
        for word in [
            upper.to_owned(),
            lower.clone(),
            format!(":{upper}"),
            format!("/{lower}"),
        ] {
            assert_eq!(Verb::lookup(&word), Some(verb), "{word:?}");
        }
        assert_eq!(Verb::lookup(&format!("::{upper}")), None);
        assert_eq!(Verb::lookup(&format!("/:{upper}")), None);
    }
    assert_eq!(parse("nick bob"), Command::Nick { name: name("bob") });
    assert_eq!(parse("NiCk bob"), Command::Nick { name: name("bob") });
    assert_eq!(parse(":nick bob"), Command::Nick { name: name("bob") });
    assert_eq!(parse("/NICK bob"), Command::Nick { name: name("bob") });
    assert_eq!(parse("/lrs"), Command::ListRooms {});
    assert_eq!(parse(":Users"), Command::Users {});
    assert_eq!(
        parse("/pm bob hi"),
        Command::Pm {
            to: name("bob"),
            text: "hi".into(),
        }
    );
}

#[test]
fn display_is_the_canonical_upper_case_form() {
    assert_eq!(parse("/nick   Bob").to_string(), "NICK Bob");
    assert_eq!(parse("help :pm").to_string(), "HELP PM");
    assert_eq!(parse(" rm\tLobby  a  b ").to_string(), "RM Lobby a  b");
}

#[test]
fn text_is_the_rest_of_the_line_with_inner_spaces_kept() {
    assert_eq!(
        parse("MSG hello   big \t world"),
        Command::Msg {
            text: "hello   big \t world".into()
        }
    );
    assert_eq!(
        parse("PM bob  a  b  c"),
        Command::Pm {
            to: name("bob"),
            text: "a  b  c".into(),
        }
    );
    assert_eq!(
        parse("RM lobby :) see /you at 5:00"),
        Command::RoomMessage {
            room: name("lobby"),
            text: ":) see /you at 5:00".into(),
        }
    );
    assert_eq!(
        parse("REGISTER alice correct horse  battery"),
        Command::Register {
            name: name("alice"),
            password: Password::new("correct horse  battery"),
        }
    );
    assert_eq!(
        parse("MSG héllo wörld ✓"),
        Command::Msg {
            text: "héllo wörld ✓".into()
        }
    );
}

#[test]
fn separators_may_be_several_spaces_or_tabs() {
    assert_eq!(parse("NICK \t  bob"), Command::Nick { name: name("bob") });
    assert_eq!(parse("NICK\tbob"), Command::Nick { name: name("bob") });
    assert_eq!(
        parse("PM\t\tbob \t hi there"),
        Command::Pm {
            to: name("bob"),
            text: "hi there".into(),
        }
    );
    assert_eq!(
        parse("LOGIN   alice\tpw"),
        Command::Login {
            name: name("alice"),
            password: Password::new("pw"),
        }
    );
    assert_eq!(
        parse("HELP \t rm"),
        Command::Help {
            verb: Some(Verb::RoomMessage)
        }
    );
}

#[test]
fn leading_and_trailing_whitespace_is_ignored() {
    assert_eq!(parse("  USERS  "), Command::Users {});
    assert_eq!(parse("\tLRS\t"), Command::ListRooms {});
    assert_eq!(
        parse(" \t NICK bob \t "),
        Command::Nick { name: name("bob") }
    );
    assert_eq!(
        parse("  RM lobby  hi  there \t"),
        Command::RoomMessage {
            room: name("lobby"),
            text: "hi  there".into(),
        }
    );
    assert_eq!(
        parse("PING  tok \t"),
        Command::Ping {
            token: Some("tok".into())
        }
    );
}

#[test]
fn blank_lines_are_none() {
    for line in ["", " ", "   ", "\t", " \t \t "] {
        assert_eq!(Command::parse(line), Ok(None), "{line:?}");
    }
}

#[test]
fn unknown_verbs_are_errors() {
    assert_eq!(parse_err("FOO"), ParseError::UnknownCommand("FOO".into()));
    assert_eq!(
        parse_err("hello there"),
        ParseError::UnknownCommand("hello".into())
    );
    assert_eq!(
        parse_err("NICKY bob"),
        ParseError::UnknownCommand("NICKY".into())
    );
    assert_eq!(
        parse_err("::nick bob"),
        ParseError::UnknownCommand("::nick".into())
    );
    assert_eq!(parse_err(":"), ParseError::UnknownCommand(":".into()));
    assert_eq!(parse_err("/"), ParseError::UnknownCommand("/".into()));
    assert_eq!(parse_err("é"), ParseError::UnknownCommand("é".into()));
}

#[test]
fn missing_arguments_are_errors() {
    let cases = [
        ("REGISTER", Verb::Register),
        ("REGISTER alice", Verb::Register),
        ("REGISTER alice   ", Verb::Register),
        ("LOGIN", Verb::Login),
        ("LOGIN alice", Verb::Login),
        ("NICK", Verb::Nick),
        ("NICK \t ", Verb::Nick),
        ("MSG", Verb::Msg),
        ("MSG   ", Verb::Msg),
        ("PM", Verb::Pm),
        ("PM bob", Verb::Pm),
        ("PM bob\t", Verb::Pm),
        ("CR", Verb::CreateRoom),
        ("JR", Verb::JoinRoom),
        ("LR", Verb::LeaveRoom),
        ("LRU", Verb::ListRoomUsers),
        ("RM", Verb::RoomMessage),
        ("RM lobby", Verb::RoomMessage),
    ];
    for (line, verb) in cases {
        assert_eq!(
            parse_err(line),
            ParseError::MissingArgument(verb),
            "{line:?}"
        );
    }
}

#[test]
fn too_many_arguments_are_errors() {
    let cases = [
        ("USERS x", Verb::Users),
        ("LRS x", Verb::ListRooms),
        ("NICK a b", Verb::Nick),
        ("NICK a\tb", Verb::Nick),
        ("CR a b", Verb::CreateRoom),
        ("JR a b", Verb::JoinRoom),
        ("LR a b", Verb::LeaveRoom),
        ("LRU a b", Verb::ListRoomUsers),
        ("HELP pm x", Verb::Help),
    ];
    for (line, verb) in cases {
        assert_eq!(
            parse_err(line),
            ParseError::TooManyArguments(verb),
            "{line:?}"
        );
    }
}

#[test]
fn bad_names_are_errors() {
    let too_long = "a".repeat(MAX_NAME_LEN + 1);
    assert_eq!(
        parse_err("NICK a.b"),
        bad_name("a.b", NameError::BadCharacter)
    );
    assert_eq!(
        parse_err(&format!("NICK {too_long}")),
        bad_name(&too_long, NameError::TooLong)
    );
    assert_eq!(parse_err("PM é hi"), bad_name("é", NameError::BadCharacter));
    assert_eq!(
        parse_err("RM #lobby hi"),
        bad_name("#lobby", NameError::BadCharacter)
    );
    assert_eq!(
        parse_err("REGISTER a:b pw"),
        bad_name("a:b", NameError::BadCharacter)
    );
    assert_eq!(
        parse_err("JR lobby!"),
        bad_name("lobby!", NameError::BadCharacter)
    );
    let longest = "a".repeat(MAX_NAME_LEN);
    assert_eq!(
        parse(&format!("CR {longest}")),
        Command::CreateRoom {
            room: name(&longest)
        }
    );
}

#[test]
fn control_characters_are_errors() {
    for line in [
        "MSG a\0b",
        "MSG a\rb",
        "MSG a\nb",
        "MSG bell\u{7}",
        "NICK bob\u{7f}",
        "\u{1b}[31mMSG red",
        "MSG next\u{85}line",
        "\0",
        "PM bob \u{1}",
        "LOGIN alice pw\u{8}",
    ] {
        assert_eq!(parse_err(line), ParseError::ControlCharacter, "{line:?}");
    }
    // Found wherever it is in a long line: the check goes sixteen bytes at a time.
    let text = "x".repeat(60);
    for at in 0..text.len() {
        for bad in ['\0', '\u{1f}', '\u{7f}', '\r'] {
            let mut line = format!("MSG {text}");
            line.insert(4 + at, bad);
            assert_eq!(parse_err(&line), ParseError::ControlCharacter, "{line:?}");
        }
    }
    // A tab is a separator, not a control character, even inside text.
    assert_eq!(
        parse("MSG a\tb"),
        Command::Msg {
            text: "a\tb".into()
        }
    );
}

#[test]
fn invisible_and_direction_changing_characters_are_errors() {
    for c in [
        '\u{202A}',
        '\u{202B}',
        '\u{202C}',
        '\u{202D}',
        '\u{202E}', // embeddings, overrides
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}', // isolates
        '\u{200E}',
        '\u{200F}',
        '\u{061C}', // direction marks
        '\u{200B}',
        '\u{2060}',
        '\u{2061}',
        '\u{2062}',
        '\u{2063}',
        '\u{2064}',
        '\u{FEFF}',
        '\u{180E}',
        '\u{115F}',
        '\u{1160}',
        '\u{3164}',
        '\u{FFA0}',
        '\u{00AD}',
        '\u{2028}',
        '\u{2029}',
        '\u{E0000}',
        '\u{E0041}',
        '\u{E007F}',
    ] {
        for line in [
            format!("MSG a{c}b"),
            format!("PM bob {c}"),
            format!("{c}MSG hi"),
        ] {
            assert_eq!(
                parse_err(&line),
                ParseError::InvisibleCharacter(c),
                "{line:?}"
            );
        }
    }
    // Tags are allowed only as the flag of England, Scotland or Wales: not to hide text
    // after a black flag, nor left open.
    for (line, refused) in [
        ("MSG \u{1F3F4}\u{E0068}\u{E0069}\u{E007F}", '\u{E0068}'),
        (
            "MSG \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}",
            '\u{E0067}',
        ),
        ("MSG \u{1F3F4}\u{E007F}", '\u{E007F}'),
        (
            "MSG \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}\u{E007F}",
            '\u{E007F}',
        ),
    ] {
        assert_eq!(
            parse_err(line),
            ParseError::InvisibleCharacter(refused),
            "{line:?}"
        );
    }
    // The message names the character, so that a user can find it.
    assert_eq!(
        ParseError::InvisibleCharacter('\u{202E}').to_string(),
        "invisible or direction-changing character U+202E is not allowed"
    );
    assert!(
        ParseError::InvisibleCharacter('\u{E0041}')
            .to_string()
            .contains(" U+E0041 ")
    );
}

/// Interlinear annotations hide text between their anchor and terminator (most fonts show
/// nothing of them), and noncharacters are not for interchange and show as nothing or as
/// garbage: refused like the other invisible characters. Their neighbours are ordinary.
#[test]
fn interlinear_annotations_and_noncharacters_are_errors() {
    let noncharacters = (0xFDD0..=0xFDEF)
        .chain((0..=0x10).flat_map(|plane| [plane << 16 | 0xFFFE, plane << 16 | 0xFFFF]))
        .map(|code| char::from_u32(code).unwrap());
    for c in ['\u{FFF9}', '\u{FFFA}', '\u{FFFB}']
        .into_iter()
        .chain(noncharacters)
    {
        assert!(is_invisible(c), "{c:?}");
        for line in [format!("MSG a{c}b"), format!("TOPIC dev {c}")] {
            assert_eq!(
                parse_err(&line),
                ParseError::InvisibleCharacter(c),
                "{line:?}"
            );
        }
    }
    for c in [
        '\u{FDCF}',
        '\u{FDF0}',
        '\u{FFF8}',
        '\u{FFFC}',
        '\u{FFFD}',
        '\u{1FFFD}',
        '\u{10FFFD}',
    ] {
        assert!(!is_invisible(c), "{c:?}");
        let text = format!("a{c}b");
        assert_eq!(parse(&format!("MSG {text}")), Command::Msg { text });
    }
    assert_eq!(
        ParseError::InvisibleCharacter('\u{FFFF}').to_string(),
        "invisible or direction-changing character U+FFFF is not allowed"
    );
}

/// What is passed on although the check refuses it (a quit reason) loses exactly what the
/// check refuses, each character replaced with U+FFFD; what the check accepts is kept as is.
#[test]
fn clean_text_replaces_what_check_text_refuses() {
    for (text, clean) in [
        ("\u{1b}[2Jhi\u{7}", "\u{FFFD}[2Jhi\u{FFFD}"),
        ("a\rb\u{7f}\u{85}c", "a\u{FFFD}b\u{FFFD}\u{FFFD}c"),
        (
            "\u{202E}exe.txt\u{200B}\u{2028}\u{FFFF}",
            "\u{FFFD}exe.txt\u{FFFD}\u{FFFD}\u{FFFD}",
        ),
        ("\u{1F3F4}\u{E0068}\u{E0069}", "\u{1F3F4}\u{FFFD}\u{FFFD}"),
        ("\u{E0041}", "\u{FFFD}"),
    ] {
        assert!(check_text(text).is_err(), "{text:?}");
        assert_eq!(clean_text(text), clean, "{text:?}");
        assert_eq!(check_text(clean), Ok(()), "{clean:?}");
    }
    for text in [
        "",
        "plain\ttext",
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F} \u{2764}\u{FE0F}",
        "\u{0645}\u{06CC}\u{200C}\u{062E}",
    ] {
        assert_eq!(check_text(text), Ok(()), "{text:?}");
        assert!(
            matches!(clean_text(text), std::borrow::Cow::Borrowed(kept) if kept == text),
            "{text:?}"
        );
    }
    // The check of a line is the check of its text.
    assert_eq!(
        check_text("exe\u{202E}"),
        Err(ParseError::InvisibleCharacter('\u{202E}'))
    );
    assert_eq!(check_text("a\u{85}"), Err(ParseError::ControlCharacter));
}

#[test]
fn emoji_sequences_and_joining_marks_stay_allowed() {
    for text in [
        "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}", // family: zero-width joiners
        "\u{2764}\u{FE0F}",                            // emoji presentation selector
        "\u{2764}\u{FE0E}",                            // text presentation selector
        "\u{1F3F4}\u{200D}\u{2620}\u{FE0F}",           // pirate flag
        "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} and \u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}", // England, Wales
        "\u{1F3F4}",                                                // a black flag alone
        "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0645}", // Persian: zero-width non-joiner
        "\u{05E9}\u{05DC}\u{05D5}\u{05DD} and \u{0645}\u{0631}\u{062D}\u{0628}\u{0627}", // right-to-left letters
    ] {
        assert_eq!(
            parse(&format!("MSG {text}")),
            Command::Msg { text: text.into() },
            "{text:?}"
        );
    }
}

#[test]
fn help_takes_an_optional_verb() {
    assert_eq!(parse("HELP"), Command::Help { verb: None });
    assert_eq!(
        parse("HELP pm"),
        Command::Help {
            verb: Some(Verb::Pm)
        }
    );
    assert_eq!(
        parse("help LRU"),
        Command::Help {
            verb: Some(Verb::ListRoomUsers)
        }
    );
    assert_eq!(
        parse("HELP :quit"),
        Command::Help {
            verb: Some(Verb::Quit)
        }
    );
    assert_eq!(
        parse("HELP /Nick"),
        Command::Help {
            verb: Some(Verb::Nick)
        }
    );
    for verb in Verb::ALL {
        assert_eq!(
            parse(&format!("HELP {verb}")),
            Command::Help { verb: Some(verb) }
        );
    }
}

#[test]
fn help_with_an_unknown_verb_is_an_error() {
    assert_eq!(
        parse_err("HELP foo"),
        ParseError::UnknownCommand("foo".into())
    );
    assert!(matches!(
        parse_err("HELP :foo"),
        ParseError::UnknownCommand(_)
    ));
}

/// `HELP :` names one (unknown) verb, exactly as the line `:` does; it is not "too many
/// arguments". `prefixed_word` eats the `:` and then finds no word.
#[test]
fn help_with_a_bare_prefix_is_an_unknown_verb() {
    for line in ["HELP :", "HELP /"] {
        assert!(
            matches!(parse_err(line), ParseError::UnknownCommand(_)),
            "{line:?} gave {:?}",
            Command::parse(line)
        );
    }
}

/// `Verb::lookup` allows one leading `:` or `/`, and `::nick` is an unknown command; but
/// `HELP` strips a prefix in `prefixed_word` and then again in `lookup`, so it accepts two.
#[test]
fn help_allows_only_one_prefix_like_a_verb() {
    for line in ["HELP ::pm", "HELP /:pm", "HELP //pm"] {
        assert!(
            matches!(parse_err(line), ParseError::UnknownCommand(_)),
            "{line:?} gave {:?}",
            Command::parse(line)
        );
    }
}

#[test]
fn ping_and_quit_take_optional_text() {
    assert_eq!(parse("PING"), Command::Ping { token: None });
    assert_eq!(
        parse("PING 42"),
        Command::Ping {
            token: Some("42".into())
        }
    );
    assert_eq!(
        parse("PING a  b"),
        Command::Ping {
            token: Some("a  b".into())
        }
    );
    assert_eq!(parse("QUIT"), Command::Quit { reason: None });
    assert_eq!(parse("QUIT  "), Command::Quit { reason: None });
    assert_eq!(
        parse("QUIT gone  fishing"),
        Command::Quit {
            reason: Some("gone  fishing".into())
        }
    );
}

#[test]
fn debug_never_shows_the_password() {
    for line in ["LOGIN alice hunter2", "REGISTER alice hunter2"] {
        let command = parse(line);
        let debug = format!("{command:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("alice"), "{debug}");
        let pretty = format!("{command:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
    }
    assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(..)");
    // Nor does an error about a login line.
    let error = parse_err("LOGIN al.ice hunter2");
    assert!(!format!("{error:?} {error}").contains("hunter2"));
}

// Property tests.

fn name_strategy() -> impl Strategy<Value = Name> {
    crate::strategies::name()
}

/// Non-empty text without control characters that neither starts nor ends with
/// whitespace; runs of inner spaces are common.
fn text_strategy() -> impl Strategy<Value = String> {
    crate::strategies::free_text()
        .prop_map(|text| text.trim().to_owned())
        .prop_filter("non-empty", |text| !text.is_empty())
}

fn password_strategy() -> impl Strategy<Value = Password> {
    text_strategy().prop_map(Password::new)
}

fn verb_strategy() -> impl Strategy<Value = Verb> {
    proptest::sample::select(Verb::ALL.to_vec())
}

fn command_strategy() -> impl Strategy<Value = Command> {
    prop_oneof![
        (name_strategy(), password_strategy())
            .prop_map(|(name, password)| Command::Register { name, password }),
        (name_strategy(), password_strategy())
            .prop_map(|(name, password)| Command::Login { name, password }),
        name_strategy().prop_map(|name| Command::Nick { name }),
        text_strategy().prop_map(|text| Command::Msg { text }),
        (name_strategy(), text_strategy()).prop_map(|(to, text)| Command::Pm { to, text }),
        proptest::option::of(text_strategy()).prop_map(|message| Command::Away { message }),
        Just(Command::Users {}),
        name_strategy().prop_map(|room| Command::CreateRoom { room }),
        name_strategy().prop_map(|room| Command::JoinRoom { room }),
        name_strategy().prop_map(|room| Command::LeaveRoom { room }),
        Just(Command::ListRooms {}),
        name_strategy().prop_map(|room| Command::ListRoomUsers { room }),
        (name_strategy(), text_strategy())
            .prop_map(|(room, text)| Command::RoomMessage { room, text }),
        (name_strategy(), proptest::option::of(text_strategy()))
            .prop_map(|(room, text)| Command::Topic { room, text }),
        proptest::option::of(text_strategy()).prop_map(|token| Command::Ping { token }),
        proptest::option::of(text_strategy()).prop_map(|token| Command::Pong { token }),
        proptest::option::of(verb_strategy()).prop_map(|verb| Command::Help { verb }),
        (
            proptest::option::of(name_strategy()),
            proptest::option::of(bound_strategy())
        )
            .prop_map(|(name, up_to)| Command::MarkRead {
                target: name.map_or(HistoryTarget::Global, HistoryTarget::Named),
                up_to,
            }),
        Just(Command::Unread {}),
        proptest::option::of(1u32..).prop_map(|count| Command::Mentions { count }),
        any::<bool>().prop_map(|on| Command::SetOption {
            option: ConnectionOption::Ids(on)
        }),
        proptest::option::of(text_strategy()).prop_map(|reason| Command::Quit { reason }),
        (
            proptest::option::of(name_strategy()),
            history_page_strategy(),
            proptest::option::of(1u32..),
        )
            .prop_map(|(name, page, count)| Command::History {
                target: name.map_or(HistoryTarget::Global, HistoryTarget::Named),
                page,
                count,
            }),
        (
            proptest::option::of(name_strategy()),
            search_words_strategy(),
            proptest::option::of(1u32..),
        )
            .prop_map(|(name, words, limit)| Command::Search {
                target: name.map_or(HistoryTarget::Global, HistoryTarget::Named),
                query: SearchWords { words, limit },
            }),
    ]
}

/// Words to search for: text that does not end in `LIMIT` and a word, which the canonical
/// form could not tell from a count.
fn search_words_strategy() -> impl Strategy<Value = String> {
    text_strategy().prop_filter("no trailing LIMIT", |text| {
        let words: Vec<&str> = text.split([' ', '\t']).rev().take(2).collect();
        !words.iter().any(|word| word.eq_ignore_ascii_case("LIMIT"))
    })
}

#[test]
fn search_takes_a_trailing_limit_and_the_words_before_it() {
    let parse = |line: &str| Command::parse(line).unwrap().unwrap();
    assert_eq!(
        parse("SEARCH dev \"big   deal\" tea*  LIMIT 7"),
        Command::Search {
            target: HistoryTarget::Named(Name::parse("dev").unwrap()),
            query: SearchWords {
                words: "\"big   deal\" tea*".into(),
                limit: Some(7),
            },
        }
    );
    assert_eq!(
        parse("search * limit the words"),
        Command::Search {
            target: HistoryTarget::Global,
            query: SearchWords {
                words: "limit the words".into(),
                limit: None,
            },
        }
    );
    for (line, error) in [
        ("SEARCH", ParseError::MissingArgument(Verb::Search)),
        ("SEARCH *", ParseError::MissingArgument(Verb::Search)),
        (
            "SEARCH * LIMIT 3",
            ParseError::MissingArgument(Verb::Search),
        ),
        (
            "SEARCH * word limit",
            ParseError::MissingArgument(Verb::Search),
        ),
        (
            "SEARCH * word LIMIT 0",
            ParseError::BadCount {
                count: "0".into(),
                verb: Verb::Search,
            },
        ),
    ] {
        assert_eq!(Command::parse(line), Err(error), "{line}");
    }
}

/// Any bound: an id from 1, or a time from 1970 to 9999 to the nanosecond, often a whole
/// second or millisecond (the forms people write).
fn bound_strategy() -> impl Strategy<Value = Bound> {
    const LAST_SECOND: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let nanos = prop_oneof![
        Just(0u32),
        (0..1000u32).prop_map(|ms| ms * 1_000_000),
        0..1_000_000_000u32
    ];
    prop_oneof![
        (1i64..).prop_map(Bound::Id),
        (0..=LAST_SECOND, nanos).prop_map(|(seconds, nanos)| {
            Bound::Time(std::time::UNIX_EPOCH + std::time::Duration::new(seconds, nanos))
        }),
    ]
}

fn history_page_strategy() -> impl Strategy<Value = HistoryPage> {
    prop_oneof![
        Just(HistoryPage::Latest),
        bound_strategy().prop_map(HistoryPage::Before),
        bound_strategy().prop_map(HistoryPage::After),
        (bound_strategy(), bound_strategy()).prop_map(|(a, b)| HistoryPage::Between(a, b)),
    ]
}

#[test]
fn history_takes_a_target_and_an_optional_positive_count() {
    for bad in [
        "HISTORY * 0",
        "HISTORY * -1",
        "HISTORY * ten",
        "HISTORY * 99999999999",
    ] {
        assert!(
            matches!(Command::parse(bad), Err(ParseError::BadCount { .. })),
            "{bad}"
        );
    }
    assert_eq!(
        Command::parse("HISTORY"),
        Err(ParseError::MissingArgument(Verb::History))
    );
    assert_eq!(
        Command::parse("HISTORY * 1 2"),
        Err(ParseError::TooManyArguments(Verb::History))
    );
    assert!(matches!(
        Command::parse("HISTORY #dev"),
        Err(ParseError::BadName { .. })
    ));
}

fn history(target: &str, page: HistoryPage, count: Option<u32>) -> Command {
    Command::History {
        target: match target {
            "*" => HistoryTarget::Global,
            room => HistoryTarget::Named(name(room)),
        },
        page,
        count,
    }
}

#[test]
fn history_reads_pages_before_after_and_between_bounds() {
    use HistoryPage::*;
    let at = |raw: &str| Bound::Time(time(raw));
    for (line, command, canonical) in [
        (
            "HISTORY dev LATEST",
            history("dev", Latest, None),
            "HISTORY dev",
        ),
        (
            "history dev latest 5",
            history("dev", Latest, Some(5)),
            "HISTORY dev 5",
        ),
        // The target comes first: a room may be called after a keyword.
        (
            "HISTORY latest",
            history("latest", Latest, None),
            "HISTORY latest",
        ),
        (
            "HISTORY before Before 3",
            history("before", Before(Bound::Id(3)), None),
            "HISTORY before BEFORE 3",
        ),
        (
            "HISTORY * before 9",
            history("*", Before(Bound::Id(9)), None),
            "HISTORY * BEFORE 9",
        ),
        (
            "HISTORY * After 007 100",
            history("*", After(Bound::Id(7)), Some(100)),
            "HISTORY * AFTER 7 100",
        ),
        (
            "HISTORY dev AFTER 2026-12-08T10:15:00Z",
            history("dev", After(at("2026-12-08T10:15:00Z")), None),
            "HISTORY dev AFTER 2026-12-08T10:15:00Z",
        ),
        (
            "HISTORY dev AFTER 2026-12-08T10:15:00.1Z",
            history("dev", After(at("2026-12-08T10:15:00.100Z")), None),
            "HISTORY dev AFTER 2026-12-08T10:15:00.100Z",
        ),
        (
            "HISTORY dev BEFORE 2026-12-08T10:15:00.123456Z 2",
            history("dev", Before(at("2026-12-08T10:15:00.123456Z")), Some(2)),
            "HISTORY dev BEFORE 2026-12-08T10:15:00.123456000Z 2",
        ),
        (
            "HISTORY bob between 10 20",
            history("bob", Between(Bound::Id(10), Bound::Id(20)), None),
            "HISTORY bob BETWEEN 10 20",
        ),
        (
            "HISTORY bob BETWEEN\t20  2026-12-08T10:15:00.123Z \t 4",
            history(
                "bob",
                Between(Bound::Id(20), at("2026-12-08T10:15:00.123Z")),
                Some(4),
            ),
            "HISTORY bob BETWEEN 20 2026-12-08T10:15:00.123Z 4",
        ),
        (
            "HISTORY * AFTER 9223372036854775807",
            history("*", After(Bound::Id(i64::MAX)), None),
            "HISTORY * AFTER 9223372036854775807",
        ),
    ] {
        assert_eq!(parse(line), command, "{line:?}");
        assert_eq!(command.to_string(), canonical, "canonical form of {line:?}");
        assert_eq!(parse(canonical), command, "{canonical:?}");
    }
}

#[test]
fn history_refuses_bad_keywords_bounds_and_counts() {
    let bad_bound = |raw: &str| ParseError::BadBound {
        bound: raw.into(),
        verb: Verb::History,
    };
    for (line, error) in [
        (
            "HISTORY dev BEFORE",
            ParseError::MissingArgument(Verb::History),
        ),
        (
            "HISTORY dev BETWEEN 1",
            ParseError::MissingArgument(Verb::History),
        ),
        (
            "HISTORY dev AFTER 1 2 3",
            ParseError::TooManyArguments(Verb::History),
        ),
        (
            "HISTORY dev LATEST 2 3",
            ParseError::TooManyArguments(Verb::History),
        ),
        (
            "HISTORY dev BEFOR 5",
            ParseError::BadHistoryPage("BEFOR".into()),
        ),
        ("HISTORY dev -1 5", ParseError::BadHistoryPage("-1".into())),
        ("HISTORY dev AFTER 0", bad_bound("0")),
        ("HISTORY dev AFTER -3", bad_bound("-3")),
        ("HISTORY dev AFTER +3", bad_bound("+3")),
        (
            "HISTORY dev AFTER 9223372036854775808",
            bad_bound("9223372036854775808"),
        ),
        ("HISTORY dev AFTER yesterday", bad_bound("yesterday")),
        ("HISTORY dev AFTER 2026-12-08", bad_bound("2026-12-08")),
        (
            "HISTORY dev AFTER 2026-12-08T10:15:00",
            bad_bound("2026-12-08T10:15:00"),
        ),
        (
            "HISTORY dev AFTER 2026-12-08T10:15:00+01:00",
            bad_bound("2026-12-08T10:15:00+01:00"),
        ),
        (
            "HISTORY dev AFTER 2026-12-08T10:15:00.Z",
            bad_bound("2026-12-08T10:15:00.Z"),
        ),
        (
            "HISTORY dev AFTER 2026-12-08T10:15:00.1234567890Z",
            bad_bound("2026-12-08T10:15:00.1234567890Z"),
        ),
        (
            "HISTORY dev AFTER 2026-13-08T10:15:00Z",
            bad_bound("2026-13-08T10:15:00Z"),
        ),
        (
            "HISTORY dev AFTER 2026-12-08t10:15:00z",
            bad_bound("2026-12-08t10:15:00z"),
        ),
        (
            "HISTORY dev AFTER 1969-12-31T23:59:59Z",
            bad_bound("1969-12-31T23:59:59Z"),
        ),
        ("HISTORY dev BETWEEN 1 x", bad_bound("x")),
        ("HISTORY dev BETWEEN x 1", bad_bound("x")),
    ] {
        assert_eq!(parse_err(line), error, "{line:?}");
    }
    for bad in [
        "HISTORY dev AFTER 5 0",
        "HISTORY dev BEFORE 5 ten",
        "HISTORY dev LATEST x",
    ] {
        assert!(
            matches!(parse_err(bad), ParseError::BadCount { .. }),
            "{bad}"
        );
    }
    // Each says what is wrong and how HISTORY is used.
    let usage = Verb::History.usage();
    assert_eq!(
        ParseError::BadHistoryPage("BEFOR".into()).to_string(),
        format!("\"BEFOR\" is not LATEST, BEFORE, AFTER or BETWEEN; usage: {usage}")
    );
    assert_eq!(
        bad_bound("0").to_string(),
        format!(
            "\"0\" is not a message id (a whole number from 1) or a time in UTC \
             (2026-12-08T10:15:00.123Z); usage: {usage}"
        )
    );
}

/// Lines that look like commands: a verb, maybe prefixed, then pieces that are likely to
/// trip a parser (separators, prefixes, control characters, non-ASCII).
fn command_like_line() -> impl Strategy<Value = String> {
    let verb = (
        proptest::sample::select(vec!["", ":", "/", "::"]),
        verb_strategy(),
        any::<bool>(),
    )
        .prop_map(|(prefix, verb, lower)| {
            let verb = verb.as_str();
            let verb = if lower {
                verb.to_ascii_lowercase()
            } else {
                verb.to_owned()
            };
            format!("{prefix}{verb}")
        });
    let piece = prop_oneof![
        proptest::sample::select(vec![
            " ",
            "\t",
            ":",
            "/",
            "a",
            "bob",
            "é",
            "\0",
            "\r",
            "\n",
            "\u{7f}",
            "\u{85}",
            "\u{3000}",
            "\u{feff}",
            "_",
            "-",
            "pm",
            "\u{1F600}",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9_-]{30,34}",
        any::<String>(),
    ];
    ("[ \t]{0,2}", verb, proptest::collection::vec(piece, 0..8))
        .prop_map(|(lead, verb, pieces)| format!("{lead}{verb}{}", pieces.concat()))
}

/// A successful parse must be stable: its canonical form parses back to the same command.
fn check_reparses(line: &str) -> Result<(), TestCaseError> {
    if let Ok(Some(command)) = Command::parse(line) {
        let canonical = command.to_string();
        prop_assert_eq!(
            Command::parse(&canonical),
            Ok(Some(command)),
            "{:?}",
            canonical
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn a_cleaned_text_passes_the_check_and_a_checked_one_is_kept(text in any::<String>()) {
        let clean = clean_text(&text);
        prop_assert_eq!(check_text(&clean), Ok(()));
        prop_assert_eq!(clean.chars().count(), text.chars().count());
        if check_text(&text).is_ok() {
            prop_assert_eq!(clean, text.as_str());
        }
    }

    #[test]
    fn parse_never_panics_on_any_string(line in any::<String>()) {
        let _ = Command::parse(&line);
        check_reparses(&line)?;
    }

    #[test]
    fn parse_never_panics_on_command_like_lines(line in command_like_line()) {
        let _ = Command::parse(&line);
        check_reparses(&line)?;
    }

    #[test]
    fn valid_commands_survive_display_then_parse(command in command_strategy()) {
        let line = command.to_string();
        let parsed = Command::parse(&line);
        prop_assert_eq!(parsed.as_ref(), Ok(&Some(command.clone())), "{:?}", line);
        // Names compare without regard to case, so check that case survives too.
        prop_assert_eq!(parsed.unwrap().unwrap().to_string(), line);
    }
}

#[test]
fn unknown_commands_from_elsewhere_suggest_the_verb() {
    for (line, verb) in [
        ("JOIN lobby", Verb::JoinRoom),
        ("/join lobby", Verb::JoinRoom),
        (":part lobby", Verb::LeaveRoom),
        ("privmsg bob hi", Verb::Pm),
        ("/list", Verb::ListRooms),
        ("exit", Verb::Quit),
    ] {
        let error = parse_err(line);
        assert!(matches!(error, ParseError::UnknownCommand(_)), "{line}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("did you mean {verb}?")) && message.contains(verb.usage()),
            "{line}: {message}"
        );
    }
    let message = parse_err("FOO").to_string();
    assert_eq!(message, "unknown command \"FOO\"; HELP lists the commands");
}

#[test]
fn no_alias_is_a_verb_or_the_alias_of_two() {
    let mut seen = std::collections::HashSet::new();
    for verb in Verb::ALL {
        for alias in verb.aliases() {
            assert_eq!(Verb::lookup(alias), None, "{alias} is a verb");
            assert!(seen.insert(alias.to_ascii_uppercase()), "{alias} twice");
        }
    }
}
