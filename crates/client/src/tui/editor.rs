//! The input line: editing by grapheme, and a history of what was sent.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Most lines kept in the input history.
const HISTORY_LIMIT: usize = 500;

#[derive(Debug, Default)]
pub struct Editor {
    text: String,
    /// Byte offset of the cursor, always on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// While browsing the history: the entry shown, and the line being typed before.
    browsing: Option<(usize, String)>,
}

impl Editor {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn insert(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Inserts pasted text; line breaks and tabs become spaces.
    pub fn insert_str(&mut self, text: &str) {
        for c in text.chars() {
            self.insert(if c.is_whitespace() { ' ' } else { c });
        }
    }

    fn previous(&self) -> Option<usize> {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map(|(at, _)| at)
    }

    fn next(&self) -> Option<usize> {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map(|g| self.cursor + g.len())
    }

    pub fn left(&mut self) {
        if let Some(at) = self.previous() {
            self.cursor = at;
        }
    }

    pub fn right(&mut self) {
        if let Some(at) = self.next() {
            self.cursor = at;
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    pub fn backspace(&mut self) {
        if let Some(at) = self.previous() {
            self.text.replace_range(at..self.cursor, "");
            self.cursor = at;
        }
    }

    pub fn delete(&mut self) {
        if let Some(end) = self.next() {
            self.text.replace_range(self.cursor..end, "");
        }
    }

    /// Ctrl-W: the word before the cursor, and the spaces after it.
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(at, c)| at + c.len_utf8());
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Ctrl-U.
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl-K.
    pub fn delete_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    fn set(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }

    /// Enter: the line, which goes into the history; the editor is emptied.
    pub fn take(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        line
    }

    /// Up: the previous line of the history.
    pub fn history_back(&mut self) {
        let index = match &self.browsing {
            Some((0, _)) => return,
            Some((index, _)) => index - 1,
            None if self.history.is_empty() => return,
            None => {
                self.browsing = Some((self.history.len(), self.text.clone()));
                self.history.len() - 1
            }
        };
        if let Some((shown, _)) = &mut self.browsing {
            *shown = index;
        }
        self.set(self.history[index].clone());
    }

    /// Down: the next line of the history, and at its end the line that was being typed.
    pub fn history_forward(&mut self) {
        let Some((index, draft)) = &self.browsing else {
            return;
        };
        if index + 1 < self.history.len() {
            let index = index + 1;
            self.browsing = Some((index, draft.clone()));
            self.set(self.history[index].clone());
        } else {
            let draft = draft.clone();
            self.browsing = None;
            self.set(draft);
        }
    }

    /// What fits in `width` columns: the visible part of the line, and the cursor's column in
    /// it. The line scrolls so that the cursor stays visible.
    pub fn view(&self, width: u16) -> (&str, u16) {
        let width = usize::from(width);
        if width == 0 {
            return ("", 0);
        }
        // The first grapheme shown: the earliest that leaves the cursor on screen.
        let mut start = 0;
        let mut before = self.text[..self.cursor].width();
        if before >= width {
            for (at, grapheme) in self.text[..self.cursor].grapheme_indices(true) {
                if before < width {
                    break;
                }
                before -= grapheme.width();
                start = at + grapheme.len();
            }
        }
        let mut end = start;
        let mut used = 0;
        for grapheme in self.text[start..].graphemes(true) {
            used += grapheme.width();
            if used > width {
                break;
            }
            end += grapheme.len();
        }
        (&self.text[start..end], before as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Editor {
        let mut editor = Editor::default();
        editor.insert_str(text);
        editor
    }

    #[test]
    fn edits_by_grapheme() {
        let mut editor = typed("ae\u{301}日");
        editor.backspace();
        assert_eq!(editor.text(), "ae\u{301}");
        editor.left();
        editor.backspace();
        assert_eq!(editor.text(), "e\u{301}");
        editor.delete();
        assert_eq!(editor.text(), "");
        let mut editor = typed("hello world");
        editor.home();
        editor.right();
        editor.insert('X');
        assert_eq!(editor.text(), "hXello world");
        editor.end();
        editor.delete_word();
        assert_eq!(editor.text(), "hXello ");
        editor.delete_word();
        assert_eq!(editor.text(), "");
        let mut editor = typed("one two");
        editor.left();
        editor.left();
        editor.delete_to_end();
        assert_eq!(editor.text(), "one t");
        editor.left();
        editor.delete_to_start();
        assert_eq!(editor.text(), "t");
        editor.insert('\u{7}');
        assert_eq!(editor.text(), "t");
    }

    #[test]
    fn history_keeps_the_draft() {
        let mut editor = typed("first");
        assert_eq!(editor.take(), "first");
        editor.insert_str("second");
        editor.take();
        editor.insert_str("second");
        editor.take();
        editor.insert_str("draft");
        editor.history_back();
        assert_eq!(editor.text(), "second");
        editor.history_back();
        assert_eq!(editor.text(), "first");
        editor.history_back();
        assert_eq!(editor.text(), "first");
        editor.history_forward();
        assert_eq!(editor.text(), "second");
        editor.history_forward();
        assert_eq!(editor.text(), "draft");
        editor.history_forward();
        assert_eq!(editor.text(), "draft");
    }

    #[test]
    fn view_scrolls_to_keep_the_cursor_visible() {
        let editor = typed("abcdef");
        assert_eq!(editor.view(10), ("abcdef", 6));
        assert_eq!(editor.view(4), ("def", 3));
        let mut editor = typed("日本語です");
        assert_eq!(editor.view(20), ("日本語です", 10));
        // Five columns: the cursor needs one, so two wide characters fit before it.
        assert_eq!(editor.view(5), ("です", 4));
        editor.home();
        assert_eq!(editor.view(5), ("日本", 0));
        assert_eq!(editor.view(0), ("", 0));
    }
}
