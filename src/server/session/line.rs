//! The line protocol's front-end: `HELLO`, then each line a [`Command`] run by `cmd::apply`,
//! answered in the protocol's own words.

use std::sync::Arc;

use linechat_protocol::{Command, ErrorCode, ParseError, Reply, Verb};

use super::Session;
use super::front_end::{Flow, FrontEnd, Refusal};
use super::serve::End;
use crate::connection::Delivery;
use crate::server::cmd::wording::LineWording;
use crate::server::cmd::{self, Step};

/// A line-protocol connection: its session is all it keeps.
pub(in crate::server) struct LineFrontEnd {
    session: Session,
}

impl LineFrontEnd {
    /// Runs one command and sends its final reply.
    async fn execute(&mut self, command: Command) -> Flow {
        let session = &mut self.session;
        // Messages go on without waiting for the previous ones' answers (only while too much
        // history waits for the writer: `Store::room_for_history`); any other command first
        // waits for theirs, so that it runs after them.
        let pipelined = matches!(
            command,
            Command::RoomMessage { .. } | Command::Pm { .. } | Command::Msg { .. }
        );
        if !pipelined || session.presence.is_none() {
            session.settle().await;
        } else {
            session.context.server.store.room_for_history().await;
        }
        match cmd::apply(session, command).await {
            Step::Reply(reply) => cmd::send(session, reply),
            Step::Done => {}
            Step::Quit(reason) => return Flow::Quit(reason),
        }
        Flow::Continue
    }
}

impl FrontEnd for LineFrontEnd {
    type Wording = LineWording;
    type Action = Result<Command, ParseError>;

    fn new(session: Session) -> Self {
        LineFrontEnd { session }
    }

    fn wording(&self) -> LineWording {
        LineWording::default()
    }

    fn greet(&mut self) {
        let guests = self.session.context.settings.allow_guests;
        cmd::send(&self.session, Reply::Hello { guests });
    }

    fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    fn logged_in(&self) -> bool {
        self.session.presence.is_some()
    }

    fn decode(&self, line: &str) -> Option<Self::Action> {
        Command::parse(line).transpose()
    }

    async fn handle(&mut self, action: Self::Action) -> Flow {
        match action {
            Ok(command) => self.execute(command).await,
            Err(error) => {
                let code = ErrorCode::from(&error);
                let reply = Reply::err(code, error.to_string());
                cmd::reply_in_order(&mut self.session, reply).await;
                Flow::Continue
            }
        }
    }

    fn ping(&mut self) {
        cmd::send(&self.session, Reply::Ping("idle".into()));
    }

    fn refuse(&mut self, refusal: Refusal) -> impl Future<Output = ()> + Send + '_ {
        let settings = &self.session.context.settings;
        let reply = match refusal {
            Refusal::Flood => {
                let message = format!(
                    "over {} lines per second; the line was dropped",
                    settings.flood_lines_per_sec
                );
                Reply::err(ErrorCode::Flood, message)
            }
            Refusal::TooLong => {
                let max = settings.max_line_length;
                let message = format!("lines are at most {max} bytes; the line was dropped");
                Reply::err(ErrorCode::LineTooLong, message)
            }
            Refusal::BadUtf8 => {
                let message = "lines must be UTF-8 text; the line was dropped";
                Reply::err(ErrorCode::BadUtf8, message)
            }
        };
        cmd::reply_in_order(&mut self.session, reply)
    }

    fn parting(&mut self, end: &End) -> Option<Arc<Delivery>> {
        match end {
            End::Quit(_) => Some(Delivery::new(Reply::ok(Verb::Quit))),
            // The line protocol's commands answer a refusal and carry on: none ends this way.
            _ => end.notice().map(Delivery::event),
        }
    }
}
