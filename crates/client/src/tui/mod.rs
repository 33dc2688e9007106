//! The terminal UI (ratatui on crossterm): the app state in [`app`], drawing in [`view`],
//! and here the loop that feeds it keys and server lines and draws after each.

pub mod app;
mod editor;
pub mod view;
mod wrap;

use std::io;
use std::time::{Duration, Instant};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

pub use app::App;

use crate::connection::LinkEvent;

/// The terminal in raw mode on the alternate screen; dropping it restores the terminal.
/// (A panic restores it too: `ratatui::try_init` installs a hook for that.)
struct Screen {
    terminal: DefaultTerminal,
}

impl Screen {
    fn new() -> io::Result<Self> {
        Ok(Self {
            terminal: ratatui::try_init()?,
        })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        ratatui::restore();
    }
}

/// Reads terminal events on a thread of its own: crossterm's reads block.
fn read_terminal() -> mpsc::UnboundedReceiver<Event> {
    let (events, receiver) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(event) = event::read() {
            if events.send(event).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Runs the TUI until the user quits or the link ends. `Err` holds a message for standard
/// error, printed once the terminal is restored.
pub async fn run(mut app: App, mut link: mpsc::UnboundedReceiver<LinkEvent>) -> Result<(), String> {
    let mut screen = Screen::new().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let mut keys = read_terminal();
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut link_open = true;
    loop {
        if app.clear_screen {
            app.clear_screen = false;
            screen.terminal.clear().map_err(|e| e.to_string())?;
        }
        screen
            .terminal
            .draw(|frame| view::render(frame, &app))
            .map_err(|e| format!("cannot draw: {e}"))?;
        if let Some(done) = app.done.take() {
            return done;
        }
        // Lets the end-to-end test check that a panic restores the terminal (debug builds).
        #[cfg(debug_assertions)]
        if std::env::var_os("LINECHAT_CLIENT_TEST_PANIC").is_some() && app.editor.text() == "!" {
            panic!("test panic, as LINECHAT_CLIENT_TEST_PANIC asked");
        }
        tokio::select! {
            event = link.recv(), if link_open => match event {
                Some(event) => {
                    app.on_event(event);
                    // Draw once for a burst of lines (a history, a busy room).
                    while let Ok(event) = link.try_recv() {
                        app.on_event(event);
                    }
                }
                None => {
                    link_open = false;
                    app.done = Some(Err("the connection task ended".into()));
                }
            },
            event = keys.recv() => match event {
                Some(Event::Key(key)) => app.on_key(key),
                Some(Event::Paste(text)) => app.editor.insert_str(&text),
                Some(_) => {} // a resize: the next draw fits the new size
                None => app.done = Some(Err("cannot read the terminal".into())),
            },
            _ = tick.tick() => app.tick(Instant::now()),
            _ = terminate.recv() => app.done = Some(Ok(())),
            _ = hangup.recv() => app.done = Some(Ok(())),
        }
    }
}
