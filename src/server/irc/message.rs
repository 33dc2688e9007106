//! IRC lines: parsing what clients send (tags, source, verb, parameters, trailing) and
//! encoding what the server sends, every line at most 512 bytes with its CR LF.

use bytes::{BufMut, Bytes, BytesMut};
use linechat_protocol::clean_text;

/// The longest IRC line, its CR LF included (RFC 1459 §2.3, "Modern IRC" §Messages).
pub(super) const MAX_LINE: usize = 512;

/// Parameters a message may have (RFC 2812 §2.3); any further ones are part of the last.
const MAX_PARAMS: usize = 15;

/// One message from a client. The tags and the source a client may send are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::server) struct Message {
    /// Upper case: verbs are case-insensitive.
    pub(super) verb: String,
    pub(super) params: Vec<String>,
}

impl Message {
    /// Parses a line without its line ending; `None` for a line with no verb.
    pub(super) fn parse(line: &str) -> Option<Message> {
        let mut rest = line.trim_start_matches(' ');
        if rest.starts_with('@') {
            rest = skip_word(rest);
        }
        if rest.starts_with(':') {
            rest = skip_word(rest);
        }
        let (verb, mut rest) = split_word(rest);
        if verb.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            if params.len() == MAX_PARAMS - 1 {
                params.push(rest.to_owned());
                break;
            }
            let (param, after) = split_word(rest);
            params.push(param.to_owned());
            rest = after;
        }
        Some(Message {
            verb: verb.to_ascii_uppercase(),
            params,
        })
    }

    /// The parameter at `index`, or "".
    pub(super) fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }
}

fn split_word(text: &str) -> (&str, &str) {
    match text.find(' ') {
        Some(space) => (&text[..space], &text[space + 1..]),
        None => (text, ""),
    }
}

fn skip_word(text: &str) -> &str {
    split_word(text).1.trim_start_matches(' ')
}

/// Encodes one line: `:<source> <verb> <params...> :<trailing>` with CR LF. Parameters are
/// often what a client sent (an unknown verb in `421`, a nick, a channel, a `PING` token),
/// so every character of them that the text rules refuse (control characters, CR and LF
/// among them, invisible ones) is written as U+FFFD: no line the server writes holds any, to
/// the sender or to anyone else. Middle parameters have spaces as `_` and may not start with
/// ':'; the trailing parameter is cut, at a character boundary, so that the line fits in
/// [`MAX_LINE`] bytes.
pub(super) fn encode(
    source: Option<&str>,
    verb: &str,
    params: &[&str],
    trailing: Option<&str>,
) -> Bytes {
    let mut line = BytesMut::with_capacity(64);
    if let Some(source) = source {
        line.put_u8(b':');
        put_clean(&mut line, source, true);
        line.put_u8(b' ');
    }
    line.put_slice(verb.as_bytes());
    for param in params {
        line.put_u8(b' ');
        let param = param.trim_start_matches([':', '\r', '\n', '\0']);
        if param.bytes().all(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
            line.put_u8(b'*');
        } else {
            put_clean(&mut line, &clean_text(param), true);
        }
    }
    // Whatever else overflows (very long parameters), the line is cut to fit.
    truncate(&mut line, MAX_LINE - 2);
    if let Some(trailing) = trailing {
        let room = (MAX_LINE - 2).saturating_sub(line.len() + 2);
        let trailing = clean_text(trailing);
        let trailing = cut(&trailing, room);
        if room > 0 || trailing.is_empty() {
            line.put_slice(b" :");
            put_clean(&mut line, trailing, false);
        }
    }
    truncate(&mut line, MAX_LINE - 2);
    line.put_slice(b"\r\n");
    line.freeze()
}

/// A list reply (`353` names, `319` channels, `303` nicks...): `words` after the parameters,
/// in as many lines as they need, each at most [`MAX_LINE`] bytes, no word cut or left out
/// (a client joins the lines). No words give one line with an empty list.
pub(super) fn encode_list(
    source: Option<&str>,
    verb: &str,
    params: &[&str],
    words: &[impl AsRef<str>],
) -> Vec<Bytes> {
    let room = MAX_LINE.saturating_sub(encode(source, verb, params, Some("")).len());
    let mut lines = Vec::new();
    let mut list = String::new();
    for word in words {
        // As `encode` writes it, which may be longer.
        let word = clean_text(word.as_ref());
        if !list.is_empty() && list.len() + 1 + word.len() > room {
            lines.push(encode(source, verb, params, Some(&list)));
            list.clear();
        }
        if !list.is_empty() {
            list.push(' ');
        }
        list.push_str(&word);
    }
    if !list.is_empty() || lines.is_empty() {
        lines.push(encode(source, verb, params, Some(&list)));
    }
    lines
}

/// Cuts UTF-8 text to at most `max` bytes, at a character boundary.
fn truncate(line: &mut BytesMut, max: usize) {
    if line.len() <= max {
        return;
    }
    let mut end = max;
    while end > 0 && line[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    line.truncate(end);
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(super) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Splits `text` into pieces of at most `max` bytes at character boundaries, preferring the
/// last space of a piece: a long message becomes several lines instead of being cut.
pub(super) fn split(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let max = max.max(4);
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        if text.len() <= max {
            rest = None;
            return Some(text);
        }
        let piece = cut(text, max);
        let piece = match piece.rfind(' ') {
            Some(space) if space > max / 2 => &piece[..space],
            _ => piece,
        };
        let after = &text[piece.len()..];
        rest = Some(after.strip_prefix(' ').unwrap_or(after));
        Some(piece)
    })
}

/// Appends `text` without what would break a line (CR, LF, NUL), and, in a middle parameter
/// (`middle`), with spaces as `_`.
pub(super) fn put_clean(line: &mut BytesMut, text: &str, middle: bool) {
    let bytes = text.as_bytes();
    // What is written is clean nearly always: copied whole.
    let clean = memchr::memchr3(b'\r', b'\n', b'\0', bytes).is_none()
        && !(middle && memchr::memchr(b' ', bytes).is_some());
    if clean {
        line.put_slice(bytes);
        return;
    }
    for &byte in bytes {
        match byte {
            b'\r' | b'\n' | b'\0' => {}
            b' ' if middle => line.put_u8(b'_'),
            byte => line.put_u8(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> (String, Vec<String>) {
        let message = Message::parse(line).unwrap();
        (message.verb, message.params)
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| (*word).to_owned()).collect()
    }

    #[test]
    fn parses_tags_source_verb_params_and_trailing() {
        assert_eq!(
            parsed("@time=x;a=b :nick!u@h privmsg #lobby :hello  there"),
            ("PRIVMSG".into(), strings(&["#lobby", "hello  there"]))
        );
        assert_eq!(
            parsed("USER alice 0 * :Alice Liddell"),
            (
                "USER".into(),
                strings(&["alice", "0", "*", "Alice Liddell"])
            )
        );
        assert_eq!(
            parsed("JOIN   #a,#b  "),
            ("JOIN".into(), strings(&["#a,#b"]))
        );
        assert_eq!(parsed("PING :"), ("PING".into(), strings(&[""])));
        assert_eq!(parsed("QUIT"), ("QUIT".into(), vec![]));
        assert_eq!(Message::parse(""), None);
        assert_eq!(Message::parse("   "), None);
        assert_eq!(Message::parse(":only.a.source"), None);
        assert_eq!(Message::parse("@tags-only"), None);
    }

    #[test]
    fn a_fifteenth_parameter_takes_the_rest_of_the_line() {
        let line = format!(
            "X {}",
            (1..=17)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let (_, params) = parsed(&line);
        assert_eq!(params.len(), 15);
        assert_eq!(params[14], "15 16 17");
    }

    #[test]
    fn encodes_and_never_exceeds_512_bytes() {
        let line = encode(Some("srv"), "001", &["alice"], Some("Welcome"));
        assert_eq!(&line[..], b":srv 001 alice :Welcome\r\n");
        let line = encode(None, "PING", &[], Some(""));
        assert_eq!(&line[..], b"PING :\r\n");
        let long = "é".repeat(600);
        let line = encode(Some("a!a@linechat"), "PRIVMSG", &["#x"], Some(&long));
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(std::str::from_utf8(&line).is_ok());
        assert!(line.ends_with(b"\r\n"));
        let line = encode(Some(&"s".repeat(600)), "X", &[&"p".repeat(600)], Some("t"));
        assert!(line.len() <= MAX_LINE);
        let line = encode(Some("srv"), "X", &["a b", ":c", ""], Some("t\r\nQUIT"));
        assert_eq!(line, ":srv X a_b c * :t\u{FFFD}\u{FFFD}QUIT\r\n");
        let line = encode(
            Some("srv"),
            "421",
            &["ann", "\u{1b}[2J\u{202E}"],
            Some("\u{7}"),
        );
        assert_eq!(line, ":srv 421 ann \u{FFFD}[2J\u{FFFD} :\u{FFFD}\r\n");
    }

    #[test]
    fn a_long_list_takes_several_lines_and_no_word_is_cut() {
        let names: Vec<String> = (0..100)
            .map(|n| format!("{n:02}{}", "x".repeat(30)))
            .collect();
        let lines = encode_list(Some("irc.test"), "353", &["me", "=", "#big"], &names);
        assert!(lines.len() > 1, "{}", lines.len());
        let mut listed = Vec::new();
        for line in &lines {
            assert!(line.len() <= MAX_LINE, "{}", line.len());
            let line = std::str::from_utf8(line).unwrap();
            let words = line
                .strip_prefix(":irc.test 353 me = #big :")
                .and_then(|words| words.strip_suffix("\r\n"))
                .unwrap();
            // Full: the next name would not have fitted.
            if listed.len() + words.split(' ').count() < names.len() {
                assert!(line.len() + 33 > MAX_LINE, "{}", line.len());
            }
            listed.extend(words.split(' ').map(str::to_owned));
        }
        assert_eq!(listed, names);
        let none: &[&str] = &[];
        assert_eq!(
            encode_list(Some("irc.test"), "303", &["me"], none),
            [Bytes::from_static(b":irc.test 303 me :\r\n")]
        );
        assert_eq!(
            encode_list(Some("s"), "303", &["me"], &["a", "b"]),
            [Bytes::from_static(b":s 303 me :a b\r\n")]
        );
    }

    #[test]
    fn splits_long_text_at_spaces_and_character_boundaries() {
        let split = |text, max| split(text, max).collect::<Vec<_>>();
        assert_eq!(split("short", 100), ["short"]);
        assert_eq!(split("", 100), [""]);
        assert_eq!(split("aaaa bbbb cccc", 10), ["aaaa bbbb", "cccc"]);
        let text = "日本".repeat(100);
        let pieces = split(&text, 50);
        assert!(pieces.iter().all(|piece| piece.len() <= 50));
        assert_eq!(pieces.concat(), text);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_encode_stays_bounded(line in ".{0,600}") {
            let _ = Message::parse(&line);
            let encoded = encode(Some("s"), "NOTICE", &[&line], Some(&line));
            proptest::prop_assert!(encoded.len() <= MAX_LINE);
            proptest::prop_assert!(std::str::from_utf8(&encoded).is_ok());
            proptest::prop_assert_eq!(encoded.iter().filter(|&&b| b == b'\n').count(), 1);
            let text = std::str::from_utf8(&encoded).unwrap();
            let text = text.strip_suffix("\r\n").unwrap();
            proptest::prop_assert_eq!(linechat_protocol::check_text(text), Ok(()));
        }
    }
}
