//! Wrapping text to a width in terminal columns, by grapheme and display width, so that wide
//! characters (CJK, emoji) and combining marks land where the terminal puts them.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Splits `text` into rows of at most `width` columns, breaking after a space when a row has
/// one and inside a word otherwise. Returns the byte range of each row; the space a row breaks
/// at is left out. Empty text is one empty row. A grapheme wider than `width` gets a row of
/// its own (the terminal clips it).
pub fn wrap(text: &str, width: usize) -> Vec<Range<usize>> {
    let mut rows = Vec::new();
    if width == 0 {
        rows.push(0..text.len());
        return rows;
    }
    let mut start = 0;
    let mut used = 0;
    // The last space in the current row: its start, and the width of the row up to it.
    let mut space: Option<(usize, usize)> = None;
    for (at, grapheme) in text.grapheme_indices(true) {
        let columns = grapheme.width();
        if used + columns > width && at > start {
            match space {
                Some((space_at, space_used)) if space_at > start => {
                    rows.push(start..space_at);
                    start = space_at + 1;
                    used -= space_used + 1;
                }
                _ => {
                    rows.push(start..at);
                    start = at;
                    used = 0;
                }
            }
            space = None;
            // After breaking at a space the rest of the row may still be too wide.
            if used + columns > width && at > start {
                rows.push(start..at);
                start = at;
                used = 0;
            }
        }
        if grapheme == " " {
            space = Some((at, used));
        }
        used += columns;
    }
    rows.push(start..text.len());
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_width::UnicodeWidthStr;

    fn rows(text: &str, width: usize) -> Vec<&str> {
        wrap(text, width).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn breaks_at_spaces() {
        assert_eq!(rows("hello world", 20), ["hello world"]);
        assert_eq!(rows("hello world", 8), ["hello", "world"]);
        assert_eq!(rows("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(rows("", 5), [""]);
    }

    #[test]
    fn breaks_long_words() {
        assert_eq!(rows("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(rows("ab cdefghij", 4), ["ab", "cdef", "ghij"]);
    }

    #[test]
    fn wide_characters_count_two_columns() {
        assert_eq!(rows("日本語のテキスト", 6), ["日本語", "のテキ", "スト"]);
        // Five columns hold two wide characters; the third moves down whole.
        assert_eq!(rows("日本語", 5), ["日本", "語"]);
        assert_eq!(rows("ab 😀😀", 4), ["ab", "😀😀"]);
        // A combining accent stays with its letter.
        assert_eq!(
            rows("e\u{301}e\u{301}e\u{301}", 2),
            ["e\u{301}e\u{301}", "e\u{301}"]
        );
        // Too wide for any row: alone on one.
        assert_eq!(rows("日日", 1), ["日", "日"]);
    }

    #[test]
    fn every_row_fits_and_nothing_is_lost() {
        let text = "The quick 茶色の fox — jumps over 😀 the lazy dog, again and again";
        for width in 2..40 {
            let ranges = wrap(text, width);
            for range in &ranges {
                assert!(text[range.clone()].width() <= width, "{width}: {range:?}");
            }
            let joined: String = ranges
                .iter()
                .map(|r| &text[r.clone()])
                .collect::<Vec<_>>()
                .concat();
            let squashed: String = text.chars().filter(|c| *c != ' ').collect();
            assert_eq!(joined.replace(' ', ""), squashed, "{width}");
        }
    }
}
