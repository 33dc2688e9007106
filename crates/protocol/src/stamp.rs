//! A message's stamp: the id history keeps it under and the time the server accepted it,
//! written in front of its line (`MSG`, `PM`, `RM`, `HIST`) for a connection that asked for
//! them with `OPTION ids on`: `@id=<id>;time=<time> <line>`. The form is IRCv3's message
//! tags: a line that starts with `@` is stamped, and its first word is the stamp.

use std::fmt;
use std::time::SystemTime;

/// A message's id and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The id history keeps the message under: ids grow in the order a server accepted the
    /// messages. One below 1 marks a message that was not stored.
    pub id: i64,
    /// When the server accepted it (shown to the millisecond, in UTC).
    pub at: SystemTime,
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "@id={};time={}",
            self.id,
            humantime::format_rfc3339_millis(self.at)
        )
    }
}

impl Stamp {
    /// Splits a line into its stamp, if it starts with one, and the line after it. `None`
    /// for a stamp that is not one (a line that starts with `@` but has no `id` and `time`).
    pub fn split(line: &str) -> Option<(Option<Stamp>, &str)> {
        let Some(tags) = line.strip_prefix('@') else {
            return Some((None, line));
        };
        let (tags, rest) = tags.split_once(' ')?;
        let (mut id, mut at) = (None, None);
        for tag in tags.split(';') {
            match tag.split_once('=') {
                Some(("id", value)) => id = value.parse().ok(),
                Some(("time", value)) => at = humantime::parse_rfc3339(value).ok(),
                // Tags a later server may add are read past.
                _ => {}
            }
        }
        Some((Some(Stamp { id: id?, at: at? }), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_as_written_and_leaves_the_line() {
        let at = humantime::parse_rfc3339("2026-12-08T10:00:00.123Z").unwrap();
        let stamp = Stamp { id: 42, at };
        let line = format!("{stamp} RM lobby alice hi there");
        assert_eq!(
            line,
            "@id=42;time=2026-12-08T10:00:00.123Z RM lobby alice hi there"
        );
        assert_eq!(
            Stamp::split(&line),
            Some((Some(stamp), "RM lobby alice hi there"))
        );
    }

    #[test]
    fn a_line_without_a_stamp_is_left_as_it_is_and_a_broken_stamp_is_refused() {
        assert_eq!(
            Stamp::split("RM lobby alice hi"),
            Some((None, "RM lobby alice hi"))
        );
        assert_eq!(Stamp::split("@id=1 RM lobby alice hi"), None);
        assert_eq!(
            Stamp::split("@id=x;time=2026-12-08T10:00:00Z RM a b c"),
            None
        );
        assert_eq!(Stamp::split("@id=1;time=2026-12-08T10:00:00Z"), None);
    }
}
