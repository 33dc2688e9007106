//! Which characters a text may hold: no control characters, nothing that shows as nothing or
//! turns the text around it (see [`is_invisible`]). Lines of the line protocol are checked
//! whole; the server's other front-ends check with the same functions what their users write
//! for others to read.

use std::borrow::Cow;

use super::ParseError;

/// Checks a text, a whole line or any part of one, against the rules of protocol.md §8: the
/// only errors are [`ParseError::ControlCharacter`] and [`ParseError::InvisibleCharacter`].
pub fn check_text(text: &str) -> Result<(), ParseError> {
    match first_refused(text) {
        None => Ok(()),
        Some((_, refusal)) => Err(refusal),
    }
}

/// `text` with every character [`check_text`] refuses replaced by U+FFFD, for a text that is
/// passed on even so (a reason for leaving, given as the user goes).
pub fn clean_text(text: &str) -> Cow<'_, str> {
    let Some((mut at, _)) = first_refused(text) else {
        return Cow::Borrowed(text);
    };
    let mut clean = String::with_capacity(text.len() + 2);
    let mut rest = text;
    loop {
        clean.push_str(&rest[..at]);
        clean.push(char::REPLACEMENT_CHARACTER);
        let refused = rest[at..].chars().next().map_or(1, char::len_utf8);
        rest = &rest[at + refused..];
        match first_refused(rest) {
            Some((next, _)) => at = next,
            None => break,
        }
    }
    clean.push_str(rest);
    Cow::Owned(clean)
}

/// Where the first character that §8 refuses is, in bytes, and why it is refused.
fn first_refused(text: &str) -> Option<(usize, ParseError)> {
    // Printable ASCII and tabs, most lines, hold no control or invisible character: one
    // quick pass over the bytes instead of a check of every character.
    if is_plain_ascii(text.as_bytes()) {
        return None;
    }
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let at = text.len() - rest.len();
        if c.is_control() && c != '\t' {
            return Some((at, ParseError::ControlCharacter));
        }
        rest = &rest[c.len_utf8()..];
        if c == BLACK_FLAG {
            rest = skip_subdivision_flag_tags(rest);
        } else if is_invisible(c) {
            return Some((at, ParseError::InvisibleCharacter(c)));
        }
    }
    None
}

/// Whether every byte is printable ASCII or a tab. Sixteen bytes at a time, each block
/// checked whole rather than stopping at the first bad byte: the compiler turns that into
/// vector instructions, four times as fast on a chat line as a byte-by-byte `all` (about 11
/// against 44 ns for an 80-byte line), and every line a server reads passes through here.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    fn plain(byte: u8) -> bool {
        matches!(byte, b' '..=b'~' | b'\t')
    }
    let (blocks, rest) = bytes.as_chunks::<16>();
    blocks
        .iter()
        .all(|block| block.iter().fold(true, |all, &byte| all & plain(byte)))
        && rest.iter().all(|&byte| plain(byte))
}

/// Whether `c` is refused in a line although it is not a control character: it shows as
/// nothing, or it changes the direction of the text around it, so a line holding it may show
/// something else than it says (a "Trojan Source" reversal, a blank-looking message, a name
/// in a text padded to look like another, text hidden in tag characters). These are the bidi
/// embeddings, overrides, isolates and marks; the zero-width and fillers that render as
/// nothing (including Hangul fillers and the soft hyphen); the Unicode line and paragraph
/// separators; the interlinear annotation characters, which hide the text they enclose; the
/// tag characters; and the noncharacters, which are not meant for interchange and show as
/// nothing or as garbage.
///
/// Kept: U+200D (zero-width joiner) and the variation selectors U+FE0E/U+FE0F, which emoji
/// sequences need, and U+200C (zero-width non-joiner), which Persian and Indic scripts need
/// to be spelt right. Right-to-left letters themselves are of course fine. The parser also
/// lets through the tags of the three subdivision flag emoji (England, Scotland, Wales).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                     // soft hyphen
            | '\u{061C}'               // Arabic letter mark
            | '\u{115F}' | '\u{1160}' // Hangul choseong and jungseong fillers
            | '\u{180E}'               // Mongolian vowel separator
            | '\u{200B}'               // zero-width space
            | '\u{200E}' | '\u{200F}' // left-to-right and right-to-left marks
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{3164}'               // Hangul filler
            | '\u{FEFF}'               // zero-width no-break space (byte order mark)
            | '\u{FFA0}'               // halfwidth Hangul filler
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation anchor, separator, terminator
            | '\u{E0000}'..='\u{E007F}' // tags
            | '\u{FDD0}'..='\u{FDEF}' // noncharacters in Arabic Presentation Forms-A
    ) || u32::from(c) & 0xFFFE == 0xFFFE // noncharacters: the last two of every plane
}

/// The base of the flags of subdivisions (England, Scotland, Wales): U+1F3F4 followed by tag
/// characters spelling the region, then U+E007F.
const BLACK_FLAG: char = '\u{1F3F4}';

/// The regions whose flags are emoji (Unicode's recommended set): the only tag sequences
/// allowed, so that tag characters cannot carry hidden text.
const FLAG_REGIONS: [&str; 3] = ["gbeng", "gbsct", "gbwls"];

/// After a U+1F3F4, skips the tags of one of [`FLAG_REGIONS`] and its cancel tag; anything
/// else is left for the caller to check (and refuse, if it is a tag).
fn skip_subdivision_flag_tags(after_flag: &str) -> &str {
    const CANCEL_TAG: char = '\u{E007F}';
    let tags_end = after_flag
        .char_indices()
        .find(|&(_, c)| !('\u{E0020}'..='\u{E007E}').contains(&c))
        .map_or(after_flag.len(), |(at, _)| at);
    let (tags, rest) = after_flag.split_at(tags_end);
    // Tag characters U+E0020..U+E007E mirror ASCII U+0020..U+007E.
    let region: String = tags
        .chars()
        .filter_map(|c| char::from_u32(u32::from(c) - 0xE0000))
        .collect();
    match rest.strip_prefix(CANCEL_TAG) {
        Some(rest) if FLAG_REGIONS.contains(&region.as_str()) => rest,
        _ => after_flag,
    }
}
