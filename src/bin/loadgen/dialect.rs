//! The protocols the load generator speaks: the same workload against linechat, IRC servers
//! and Redis pub/sub.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dialect {
    /// linechat's own line protocol.
    Linechat,
    /// Plain IRC (RFC 1459 registration, JOIN, PRIVMSG).
    Irc,
    /// Redis pub/sub with inline commands: SUBSCRIBE and PUBLISH.
    Redis,
}

/// What a connection waits for after sending a step's lines.
pub struct Step {
    pub send: String,
    /// A line containing this ends the step.
    pub until: &'static str,
}

impl Dialect {
    /// Whether a sender is itself a room member (and so receives the others' messages).
    pub fn senders_are_members(self) -> bool {
        self != Dialect::Redis
    }

    /// Lines that log `name` in; `None` when the protocol has no login.
    pub fn login(self, name: &str) -> Option<Step> {
        match self {
            Dialect::Linechat => Some(Step {
                send: format!("NICK {name}\n"),
                until: "OK NICK",
            }),
            Dialect::Irc => Some(Step {
                send: format!("NICK {name}\r\nUSER {name} 0 * :{name}\r\n"),
                until: " 001 ",
            }),
            Dialect::Redis => None,
        }
    }

    /// Lines that put a logged-in connection in `room`; `first` creates it where that matters.
    pub fn join(self, room: &str, first: bool) -> Step {
        match self {
            Dialect::Linechat if first => Step {
                send: format!("CR {room}\n"),
                until: "OK CR",
            },
            Dialect::Linechat => Step {
                send: format!("JR {room}\n"),
                until: "OK JR",
            },
            Dialect::Irc => Step {
                send: format!("JOIN #{room}\r\n"),
                until: " 366 ",
            },
            Dialect::Redis => Step {
                send: format!("SUBSCRIBE {room}\r\n"),
                until: "subscribe",
            },
        }
    }

    /// A message to everyone in `room`.
    pub fn room_message(self, room: &str, payload: &str, out: &mut Vec<u8>) {
        let line = match self {
            Dialect::Linechat => format!("RM {room} {payload}\n"),
            Dialect::Irc => format!("PRIVMSG #{room} :{payload}\r\n"),
            Dialect::Redis => format!("PUBLISH {room} {payload}\r\n"),
        };
        out.extend_from_slice(line.as_bytes());
    }

    /// A private message to `to`.
    pub fn private_message(self, to: &str, payload: &str, out: &mut Vec<u8>) {
        let line = match self {
            Dialect::Linechat => format!("PM {to} {payload}\n"),
            Dialect::Irc => format!("PRIVMSG {to} :{payload}\r\n"),
            // A channel per receiver stands in for a private conversation.
            Dialect::Redis => format!("PUBLISH {to} {payload}\r\n"),
        };
        out.extend_from_slice(line.as_bytes());
    }

    /// The answer to a keep-alive probe from the server, if `line` is one.
    pub fn pong(self, line: &[u8]) -> Option<Vec<u8>> {
        match self {
            Dialect::Irc if line.starts_with(b"PING") => {
                let mut pong = b"PONG".to_vec();
                pong.extend_from_slice(&line[4..]);
                pong.extend_from_slice(b"\r\n");
                Some(pong)
            }
            _ => None,
        }
    }
}
