//! What IRC users write for others to read (messages, topics, away messages, reasons for
//! leaving) as linechat keeps it: IRC formatting removed, as a line-protocol client could not
//! show it, then held to the text rules of protocol.md §8 by the line protocol's own check
//! ([`check_text`]), so that the IRC port lets through nothing the line port refuses.
//!
//! A text that can be refused is ([`checked`]); a reason given by a user who leaves is passed
//! on even so, without what the rules refuse ([`cleaned`]).

use std::borrow::Cow;

use linechat_protocol::{ParseError, check_text, clean_text};

/// A message's text: CTCP `ACTION` as `/me ...`, IRC formatting removed. `None` for another
/// CTCP request.
pub(super) fn from_irc(raw: &str) -> Option<Cow<'_, str>> {
    match raw.strip_prefix('\u{1}') {
        Some(ctcp) => {
            let ctcp = ctcp.strip_suffix('\u{1}').unwrap_or(ctcp);
            let action = format!("/me {}", ctcp.strip_prefix("ACTION ")?);
            Some(Cow::Owned(without_formatting(&action).into_owned()))
        }
        None => Some(without_formatting(raw)),
    }
}

/// `text` without IRC formatting codes: bold, italics, underline, strike-through, monospace,
/// reverse, reset, and colours with their numbers (`^C4,12`) or hex values (`^DFF0000`).
pub(super) fn without_formatting(text: &str) -> Cow<'_, str> {
    // The codes are control characters, which most text has none of.
    if !text.bytes().any(|byte| byte < b' ') {
        return Cow::Borrowed(text);
    }
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // Colour: ^C, a foreground of up to two digits, then maybe ",background".
            '\u{3}' => skip_colour(&mut chars, 2, char::is_ascii_digit),
            // Hex colour: ^D, a foreground of six hex digits, then maybe ",background".
            '\u{4}' => skip_colour(&mut chars, 6, char::is_ascii_hexdigit),
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            c => plain.push(c),
        }
    }
    Cow::Owned(plain)
}

/// Skips the colours after a colour code: a foreground of up to `digits` digits, then a
/// comma and a background only if a digit follows the comma (else the comma is text).
fn skip_colour(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    digits: usize,
    is_digit: fn(&char) -> bool,
) {
    for _ in 0..digits {
        chars.next_if(is_digit);
    }
    if chars.peek() == Some(&',') {
        let mut ahead = chars.clone();
        ahead.next();
        if ahead.peek().is_some_and(is_digit) {
            chars.next();
            for _ in 0..digits {
                chars.next_if(is_digit);
            }
        }
    }
}

/// A text as the line protocol takes it, trimmed of spaces and tabs, once formatting is
/// removed (by the caller); the line protocol's refusal if §8 refuses a character of it.
pub(super) fn checked(text: &str) -> Result<&str, ParseError> {
    check_text(text)?;
    Ok(trim(text))
}

/// A reason for leaving (`QUIT`, `PART`): formatting removed, and each character §8 refuses
/// replaced with U+FFFD, since the user leaves whatever the reason says. `None` if nothing
/// is left of it.
pub(super) fn cleaned(raw: &str) -> Option<String> {
    let plain = without_formatting(raw);
    let clean = clean_text(&plain);
    Some(trim(&clean))
        .filter(|reason| !reason.is_empty())
        .map(str::to_owned)
}

/// Without leading and trailing spaces and tabs, as the line protocol trims its lines.
fn trim(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_slash_me_and_formatting_goes() {
        assert_eq!(
            from_irc("\u{1}ACTION waves\u{1}").as_deref(),
            Some("/me waves")
        );
        assert_eq!(from_irc("\u{1}VERSION\u{1}"), None);
        assert_eq!(
            from_irc("\u{2}bold\u{2} \u{3}4,12red\u{3} \u{3}3green \u{1f}u\u{f}").as_deref(),
            Some("bold red green u")
        );
        assert_eq!(
            from_irc("\u{1}ACTION \u{1d}slowly\u{1d} waves\u{1}").as_deref(),
            Some("/me slowly waves")
        );
        assert_eq!(from_irc("\u{3},x").as_deref(), Some(",x"));
        assert_eq!(from_irc("plain 日本").as_deref(), Some("plain 日本"));
    }

    #[test]
    fn hex_colours_and_every_formatting_code_go() {
        assert_eq!(
            without_formatting("\u{4}FF0000red\u{4} \u{4}00ff00,0000FFon blue\u{4},x"),
            "red on blue,x"
        );
        assert_eq!(
            without_formatting("\u{11}mono\u{16}rev\u{1e}strike\u{1d}it\u{f}"),
            "monorevstrikeit"
        );
        // Other control characters are left for the text rules to refuse.
        assert_eq!(without_formatting("\u{1b}[2J\u{7}"), "\u{1b}[2J\u{7}");
    }

    #[test]
    fn texts_are_checked_and_reasons_cleaned_by_the_line_protocols_rules() {
        assert_eq!(checked("  hi\tthere \t"), Ok("hi\tthere"));
        assert_eq!(checked("\u{1b}[2J"), Err(ParseError::ControlCharacter));
        assert_eq!(
            checked("a\u{FFFB}"),
            Err(ParseError::InvisibleCharacter('\u{FFFB}'))
        );
        assert_eq!(
            cleaned(" \u{2}bye\u{2} \u{1b}[2J\u{202E} ").as_deref(),
            Some("bye \u{FFFD}[2J\u{FFFD}")
        );
        assert_eq!(cleaned("\u{2}\u{f} \t"), None);
        assert_eq!(cleaned("").as_deref(), None);
    }
}
