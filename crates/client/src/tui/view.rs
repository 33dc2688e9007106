//! Drawing the app: conversations on the left, messages in the middle, members on the right,
//! the input line and a status line at the bottom. Narrow terminals drop the side panes.

use std::ops::Range;

use chrono::Local;
use linechat_protocol::Name;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::app::{App, Body, Entry, HistoryState, Status};
use super::wrap::wrap;
use crate::input::Target;

/// Widest terminal that shows only the messages; from here on the conversation list shows.
const SIDE_FROM: u16 = 50;
/// From this width on, the members show too.
const MEMBERS_FROM: u16 = 80;

pub fn render(frame: &mut Frame, app: &App) {
    let [main, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let side_width = if main.width >= SIDE_FROM {
        (main.width / 4).clamp(14, 24)
    } else {
        0
    };
    let members_width = if main.width >= MEMBERS_FROM { 18 } else { 0 };
    let [side, messages, members] = Layout::horizontal([
        Constraint::Length(side_width),
        Constraint::Min(10),
        Constraint::Length(members_width),
    ])
    .areas(main);
    if side_width > 0 {
        render_conversations(frame, app, side);
    }
    render_messages(frame, app, messages);
    if members_width > 0 {
        render_members(frame, app, members);
    }
    render_input(frame, app, input);
    render_status(frame, app, status);
}

fn render_conversations(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered().title(" Chats ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = usize::from(inner.height);
    let first = app.selected.saturating_sub(height.saturating_sub(1));
    let lines: Vec<Line> = app
        .conversations
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(index, conversation)| {
            let mut spans = vec![Span::raw(conversation.label())];
            if conversation.unread > 0 {
                spans.push(Span::styled(
                    format!(" ({})", conversation.unread),
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ));
            }
            let line = Line::from(spans);
            if index == app.selected {
                line.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// A name's colour: the same for a name every time, whatever its case.
fn name_color(name: &Name) -> Color {
    const COLORS: [Color; 6] = [
        Color::Cyan,
        Color::Green,
        Color::Yellow,
        Color::Magenta,
        Color::LightBlue,
        Color::LightRed,
    ];
    let hash = name.as_str().bytes().fold(7u32, |hash, b| {
        hash.wrapping_mul(31) + u32::from(b.to_ascii_lowercase())
    });
    COLORS[hash as usize % COLORS.len()]
}

/// The rows of one entry at `width` columns: `time name: text`, wrapped.
pub fn entry_rows(entry: &Entry, me: &Name, width: usize) -> Vec<Line<'static>> {
    let time = if entry.at.date_naive() == Local::now().date_naive() {
        entry.at.format("%H:%M").to_string()
    } else {
        entry.at.format("%Y-%m-%d %H:%M").to_string()
    };
    let dim = Style::new().fg(Color::DarkGray);
    let (text, styles): (String, Vec<(usize, Style)>) = match &entry.body {
        Body::Message { from, text } => {
            let mut name_style = Style::new().fg(name_color(from));
            if from == me {
                name_style = name_style.add_modifier(Modifier::BOLD);
            }
            let name_end = time.len() + 1 + from.as_str().len() + 1;
            (
                format!("{time} {from}: {text}"),
                vec![(0, dim), (time.len(), name_style), (name_end, Style::new())],
            )
        }
        Body::Info(text) => (
            format!("{time} -- {text}"),
            vec![(0, dim), (time.len(), Style::new().fg(Color::Gray))],
        ),
        Body::Error(text) => (
            format!("{time} !! {text}"),
            vec![(0, dim), (time.len(), Style::new().fg(Color::Red))],
        ),
    };
    wrap(&text, width)
        .into_iter()
        .map(|row| styled_row(&text, row, &styles))
        .collect()
}

/// The part `row` of `text`, in the styles that start at the given offsets.
fn styled_row(text: &str, row: Range<usize>, styles: &[(usize, Style)]) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, (start, style)) in styles.iter().enumerate() {
        let end = styles.get(i + 1).map_or(text.len(), |(next, _)| *next);
        let from = (*start).max(row.start);
        let to = end.min(row.end);
        if from < to {
            spans.push(Span::styled(text[from..to].to_owned(), *style));
        }
    }
    Line::from(spans)
}

fn render_messages(frame: &mut Frame, app: &App, area: Rect) {
    let conversation = app.current();
    let mut title = format!(" {} ", conversation.label());
    if conversation.history == HistoryState::Loading {
        title.push_str("(loading history) ");
    }
    if app.scroll > 0 {
        title.push_str(&format!("(scrolled up {} rows) ", app.scroll));
    }
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let height = usize::from(inner.height);
    let rows: Vec<Line> = conversation
        .entries
        .iter()
        .flat_map(|entry| entry_rows(entry, &app.session.me, width))
        .collect();
    app.page_rows.set(height);
    app.total_rows.set(rows.len());
    let scroll = app.scroll.min(rows.len().saturating_sub(height));
    let end = rows.len() - scroll;
    let start = end.saturating_sub(height);
    frame.render_widget(Paragraph::new(rows[start..end].to_vec()), inner);
}

fn render_members(frame: &mut Frame, app: &App, area: Rect) {
    let conversation = app.current();
    let online = |name: &Name| app.online.contains(name);
    let (title, names): (String, Vec<(Name, bool)>) = match &conversation.target {
        Target::Everyone => (
            format!(" Online {} ", app.online.len()),
            app.online.iter().map(|name| (name.clone(), true)).collect(),
        ),
        Target::Room(_) => match &conversation.members {
            Some(members) => (
                format!(" Members {} ", members.len()),
                members.iter().map(|name| (name.clone(), true)).collect(),
            ),
            None => (" Members ".into(), Vec::new()),
        },
        Target::User(user) => {
            let mut names = vec![(app.session.me.clone(), true)];
            if *user != app.session.me {
                names.push((user.clone(), online(user)));
            }
            (" Private ".into(), names)
        }
    };
    let lines: Vec<Line> = names
        .into_iter()
        .map(|(name, online)| {
            let style = Style::new().fg(name_color(&name));
            if online {
                Line::from(Span::styled(name.to_string(), style))
            } else {
                Line::from(vec![
                    Span::styled(name.to_string(), style.add_modifier(Modifier::DIM)),
                    Span::styled(" (offline)", Style::new().fg(Color::DarkGray)),
                ])
            }
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

fn render_input(frame: &mut Frame, app: &App, area: Rect) {
    let to = match &app.current().target {
        Target::Everyone => "everyone".to_owned(),
        target => target.label(),
    };
    let block = Block::bordered().title(format!(" to {to} "));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (visible, cursor) = app.editor.view(inner.width);
    frame.render_widget(Paragraph::new(visible.to_owned()), inner);
    if inner.width > 0 && inner.height > 0 {
        frame.set_cursor_position((inner.x + cursor.min(inner.width - 1), inner.y));
    }
}

fn render_status(frame: &mut Frame, app: &App, area: Rect) {
    let (text, color) = match &app.status {
        Status::Connected => (
            format!("connected to {} as {}", app.addr, app.session.me),
            Color::Green,
        ),
        Status::Reconnecting { reason, next } => {
            let next = next
                .map(|at| {
                    let left = at.saturating_duration_since(std::time::Instant::now());
                    format!(", next try in {} s", left.as_secs() + 1)
                })
                .unwrap_or_default();
            (format!("reconnecting: {reason}{next}"), Color::Yellow)
        }
    };
    let hint = "Tab: next  PgUp/PgDn: scroll  :help  Ctrl-C: quit";
    let hint_width = hint.len() as u16;
    let status_width = u16::try_from(text.width()).unwrap_or(u16::MAX);
    let status = Span::styled(text, Style::new().fg(color));
    // The hint only where it does not hide any of the status.
    if area.width > status_width.saturating_add(hint_width) {
        let [left, right] =
            Layout::horizontal([Constraint::Min(0), Constraint::Length(hint_width)]).areas(area);
        frame.render_widget(Paragraph::new(Line::from(status)), left);
        frame.render_widget(
            Paragraph::new(Span::styled(hint, Style::new().fg(Color::DarkGray))),
            right,
        );
    } else {
        frame.render_widget(Paragraph::new(Line::from(status)), area);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;

    use super::*;
    use crate::tui::app::tests::{app, key, line, sent, type_line};

    /// Every entry at 12:34 today, so that frames can be compared.
    fn freeze_time(app: &mut App) {
        let noon = Local::now().date_naive().and_hms_opt(12, 34, 0).unwrap();
        let at = Local.from_local_datetime(&noon).earliest().unwrap();
        for conversation in &mut app.conversations {
            for entry in &mut conversation.entries {
                entry.at = at;
            }
        }
    }

    fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| render(frame, app)).unwrap();
        terminal
    }

    /// An app in room dev with bob, a message and a private conversation with carol.
    fn busy_app() -> App {
        let (mut app, mut commands) = app();
        app.on_event(line("USERS bob carol me"));
        app.on_event(line("OK HISTORY 0"));
        type_line(&mut app, ":jr dev");
        app.on_event(line("OK JR dev"));
        app.on_event(line("HIST dev 2026-01-01T10:00:00.000Z bob earlier"));
        app.on_event(line("OK HISTORY 1"));
        app.on_event(line("LRU dev bob me"));
        app.on_event(line(
            "RM dev bob 日本語のテキスト and a rather long line that wraps",
        ));
        app.on_event(line("PM carol psst"));
        for c in "draft".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        sent(&mut commands);
        freeze_time(&mut app);
        app
    }

    /// The text on screen, one string per row (a wide character once, not twice).
    fn screen(terminal: &Terminal<TestBackend>) -> Vec<String> {
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                let mut row = String::new();
                let mut skip = 0;
                for x in 0..buffer.area.width {
                    let cell = &buffer[(x, y)];
                    if skip == 0 {
                        row.push_str(cell.symbol());
                        skip = cell.symbol().width().saturating_sub(1);
                    } else {
                        skip -= 1;
                    }
                }
                row
            })
            .collect()
    }

    #[test]
    fn renders_conversations_messages_members_and_input() {
        let app = busy_app();
        let terminal = draw(&app, 80, 12);
        assert_eq!(
            screen(&terminal),
            [
                "┌ Chats ───────────┐┌ #dev ──────────────────────────────────┐┌ Members 2 ─────┐",
                "│* everyone        ││12:34 bob: earlier                      ││bob             │",
                "│#dev              ││12:34 -- joined #dev                    ││me              │",
                "│@carol (1)        ││12:34 bob: 日本語のテキスト and a       ││                │",
                "│                  ││rather long line that wraps             ││                │",
                "│                  ││                                        ││                │",
                "│                  ││                                        ││                │",
                "└──────────────────┘└────────────────────────────────────────┘└────────────────┘",
                "┌ to #dev ─────────────────────────────────────────────────────────────────────┐",
                "│draft                                                                         │",
                "└──────────────────────────────────────────────────────────────────────────────┘",
                "connected to 127.0.0.1:8080 as me                                               ",
            ]
        );
        let buffer = terminal.backend().buffer();
        // The selected conversation is highlighted, the unread count stands out.
        assert!(buffer[(1, 2)].modifier.contains(Modifier::REVERSED));
        assert!(!buffer[(1, 1)].modifier.contains(Modifier::REVERSED));
        assert_eq!(buffer[(8, 3)].fg, Color::Yellow);
        // The cursor is after "draft".
        let mut terminal = terminal;
        terminal.backend_mut().assert_cursor_position((6, 9));
    }

    #[test]
    fn narrow_terminals_keep_the_messages_and_drop_the_side_panes() {
        let app = busy_app();
        let medium = screen(&draw(&app, 60, 8));
        assert_eq!(
            medium[..4],
            [
                "┌ Chats ──────┐┌ #dev ─────────────────────────────────────┐",
                "│* everyone   ││12:34 bob: 日本語のテキスト and a rather   │",
                "│#dev         ││long line that wraps                       │",
                "└─────────────┘└───────────────────────────────────────────┘",
            ]
        );
        let narrow = screen(&draw(&app, 30, 9));
        assert_eq!(
            narrow,
            [
                "┌ #dev ──────────────────────┐",
                "│12:34 bob: 日本語のテキスト │",
                "│and a rather long line that │",
                "│wraps                       │",
                "└────────────────────────────┘",
                "┌ to #dev ───────────────────┐",
                "│draft                       │",
                "└────────────────────────────┘",
                "connected to 127.0.0.1:8080 as",
            ]
        );
        // Tiny or empty terminals do not panic.
        for (width, height) in [(1, 1), (5, 3), (0, 0), (200, 2)] {
            draw(&app, width, height);
        }
    }

    #[test]
    fn the_input_line_scrolls_and_long_history_scrolls_by_page() {
        let (mut app, _commands) = app();
        app.on_event(line("USERS me"));
        app.on_event(line("OK HISTORY 0"));
        for n in 0..30 {
            app.on_event(line(&format!("MSG bob message {n}")));
        }
        for c in "a line longer than the input box is wide".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        freeze_time(&mut app);
        let rows = screen(&draw(&app, 40, 10));
        assert_eq!(
            rows,
            [
                "┌ * everyone ──────────────────────────┐",
                "│12:34 bob: message 26                 │",
                "│12:34 bob: message 27                 │",
                "│12:34 bob: message 28                 │",
                "│12:34 bob: message 29                 │",
                "└──────────────────────────────────────┘",
                "┌ to everyone ─────────────────────────┐",
                "│ine longer than the input box is wide │",
                "└──────────────────────────────────────┘",
                "connected to 127.0.0.1:8080 as me       ",
            ]
        );
        app.on_key(key(KeyCode::PageUp));
        let rows = screen(&draw(&app, 40, 10));
        assert!(rows[0].contains("scrolled up 3 rows"), "{}", rows[0]);
        assert_eq!(rows[4], "│12:34 bob: message 26                 │");
        for _ in 0..20 {
            app.on_key(key(KeyCode::PageUp));
        }
        let rows = screen(&draw(&app, 40, 10));
        assert_eq!(rows[1], "│12:34 bob: message 0                  │");
        app.on_key(key(KeyCode::Esc));
        let rows = screen(&draw(&app, 40, 10));
        assert_eq!(rows[4], "│12:34 bob: message 29                 │");
        // Editing moves the visible part of the line with the cursor.
        app.on_key(key(KeyCode::Home));
        let rows = screen(&draw(&app, 40, 10));
        assert_eq!(rows[7], "│a line longer than the input box is wi│");
    }
}
