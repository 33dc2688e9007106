//! The line protocol's wording of events: the lines its connections' writers write for what
//! the actors deliver (`RM`, `PM`, `MSG`, `JR`, `LR` and the `NOTICE`s) and for the parting
//! notice (`NOTICE CLOSING`, `NOTICE SHUTDOWN`).

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;

use crate::connection::{Content, Delivery, Form, Wording, encode_display};
use crate::server::event::{Event, PresenceChange, Recalled};
use linechat_protocol::{HistoryTarget, Notice, Reply};

/// How a line-protocol connection's writer words its deliveries: the session's own lines as
/// they are, events in the protocol's lines, message lines stamped with their id and time
/// once the client asked for that (`OPTION ids on`).
#[derive(Debug, Clone, Copy, Default)]
pub(in crate::server) struct LineWording {
    stamped: bool,
}

/// Turns the stamps of message lines on or off, for the lines written after it: queued in
/// order with them, as the client's `OPTION` is answered in order.
#[derive(Debug, Clone, Copy)]
pub(in crate::server) struct Stamped(pub bool);

impl Wording for LineWording {
    fn put(&mut self, delivery: &Arc<Delivery>, batch: &mut BytesMut) {
        let form = if self.stamped {
            Form::LineStamped
        } else {
            Form::Line
        };
        match delivery.content() {
            Content::Lines(lines) => batch.extend_from_slice(lines),
            // The parting, which is this connection's alone, or an event held by this writer
            // alone (a private message) and not worded yet: no other connection will ask for
            // its wording, which is written straight into the batch.
            Content::Event(event)
                if delivery.ends()
                    || (Arc::strong_count(delivery) == 1 && !delivery.is_worded(form)) =>
            {
                use fmt::Write;
                // Writing to a `BytesMut` grows it; it cannot fail.
                let _ = writeln!(batch, "{}", self.lines(event));
            }
            Content::Event(_) => {
                let lines = delivery.worded(form, |event| Some(encode_display(&self.lines(event))));
                if let Some(lines) = lines {
                    batch.extend_from_slice(lines);
                }
            }
            Content::Own(value) => {
                if let Some(Stamped(on)) = value.downcast_ref::<Stamped>() {
                    self.stamped = *on;
                }
            }
        }
    }
}

impl LineWording {
    fn lines<'a>(&self, event: &'a Event) -> Lines<'a> {
        Lines {
            event,
            stamped: self.stamped,
        }
    }
}

/// The lines of an event, `\n` between them (not after the last); a message's line starts
/// with its stamp if `stamped`.
pub(in crate::server) struct Lines<'a> {
    pub event: &'a Event,
    pub stamped: bool,
}

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stamped
            && let Some(stamp) = self.event.stamp()
        {
            write!(f, "{stamp} ")?;
        }
        match self.event {
            Event::RoomMessage {
                room, from, text, ..
            } => write!(f, "RM {room} {from} {text}"),
            Event::PrivateMessage { from, text, .. } => write!(f, "PM {from} {text}"),
            Event::GlobalMessage { from, text, .. } => write!(f, "MSG {from} {text}"),
            Event::Recalled {
                of, at, from, text, ..
            } => {
                let target = match of {
                    Recalled::Global => HistoryTarget::Global,
                    Recalled::Named(name) => HistoryTarget::Named(name.clone()),
                };
                let (at, from, text) = (*at, from.clone(), text.clone());
                let hist = Reply::Hist {
                    target,
                    at,
                    from,
                    text,
                };
                write!(f, "{hist}")
            }
            Event::Joined { room, user } => write!(f, "JR {room} {user}"),
            Event::Left { room, user } => write!(f, "LR {room} {user}"),
            Event::RoomCreated { room, by } => {
                let (room, by) = (room.clone(), by.clone());
                write!(f, "{}", Reply::Notice(Notice::RoomCreated { room, by }))
            }
            Event::Topic { room, by, text } => {
                let (room, by, text) = (room.clone(), by.clone(), text.clone());
                write!(f, "{}", Reply::Notice(Notice::Topic { room, by, text }))
            }
            Event::Presence(batch) => {
                for (i, change) in batch.changes().iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    let notice = match change {
                        PresenceChange::Online { user } => Notice::Online { user: user.clone() },
                        PresenceChange::Offline { user, how } => Notice::Offline {
                            user: user.clone(),
                            how: how.clone(),
                        },
                    };
                    write!(f, "{}", Reply::Notice(notice))?;
                }
                Ok(())
            }
            Event::Closing(reason) => {
                let reason = *reason;
                write!(f, "{}", Reply::Notice(Notice::Closing { reason }))
            }
            Event::ShuttingDown => write!(f, "{}", Reply::Notice(Notice::Shutdown)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::MessageId;
    use linechat_protocol::{CloseReason, Departure, Name};
    use std::time::SystemTime;

    fn name(name: &str) -> Name {
        Name::parse(name).unwrap()
    }

    fn lines(event: Event) -> String {
        let delivery = Delivery::event(event);
        let mut batch = BytesMut::new();
        LineWording::default().put(&delivery, &mut batch);
        String::from_utf8(batch.to_vec()).unwrap()
    }

    #[test]
    fn events_are_the_protocol_lines() {
        let at = SystemTime::now();
        let (alice, lobby) = (name("alice"), name("lobby"));
        let text = "hi  there".to_owned();
        let cases = [
            (
                Event::RoomMessage {
                    id: MessageId::default(),
                    at,
                    room: lobby.clone(),
                    from: alice.clone(),
                    text: text.clone(),
                },
                Reply::Rm {
                    room: lobby.clone(),
                    from: alice.clone(),
                    text: text.clone(),
                },
            ),
            (
                Event::PrivateMessage {
                    id: MessageId::default(),
                    at,
                    from: alice.clone(),
                    text: text.clone(),
                },
                Reply::Pm {
                    from: alice.clone(),
                    text: text.clone(),
                },
            ),
            (
                Event::GlobalMessage {
                    id: MessageId::default(),
                    at,
                    from: alice.clone(),
                    text: text.clone(),
                },
                Reply::Msg {
                    from: alice.clone(),
                    text: text.clone(),
                },
            ),
            (
                Event::Recalled {
                    of: Recalled::Named(lobby.clone()),
                    id: MessageId::default(),
                    at,
                    from: alice.clone(),
                    text: text.clone(),
                },
                Reply::Hist {
                    target: HistoryTarget::Named(lobby.clone()),
                    at,
                    from: alice.clone(),
                    text: text.clone(),
                },
            ),
            (
                Event::Recalled {
                    of: Recalled::Global,
                    id: MessageId::default(),
                    at,
                    from: alice.clone(),
                    text: text.clone(),
                },
                Reply::Hist {
                    target: HistoryTarget::Global,
                    at,
                    from: alice.clone(),
                    text: text.clone(),
                },
            ),
            (
                Event::Joined {
                    room: lobby.clone(),
                    user: alice.clone(),
                },
                Reply::Joined {
                    room: lobby.clone(),
                    user: alice.clone(),
                },
            ),
            (
                Event::Left {
                    room: lobby.clone(),
                    user: alice.clone(),
                },
                Reply::Left {
                    room: lobby.clone(),
                    user: alice.clone(),
                },
            ),
            (
                Event::RoomCreated {
                    room: lobby.clone(),
                    by: alice.clone(),
                },
                Reply::Notice(Notice::RoomCreated {
                    room: lobby.clone(),
                    by: alice.clone(),
                }),
            ),
            (
                Event::Topic {
                    room: lobby.clone(),
                    by: alice.clone(),
                    text: None,
                },
                Reply::Notice(Notice::Topic {
                    room: lobby.clone(),
                    by: alice.clone(),
                    text: None,
                }),
            ),
        ];
        for (event, reply) in cases {
            assert_eq!(lines(event), format!("{reply}\n"));
        }
        let how = Departure::Quit(Some("bye now".into()));
        let batch = vec![
            PresenceChange::Online {
                user: alice.clone(),
            },
            PresenceChange::Offline {
                user: alice.clone(),
                how,
            },
        ];
        assert_eq!(
            lines(Event::Presence(batch.into())),
            "NOTICE ONLINE alice\nNOTICE OFFLINE alice QUIT bye now\n"
        );
    }

    #[test]
    fn a_parting_is_the_closing_notice() {
        for &reason in CloseReason::ALL {
            let notice = Reply::Notice(Notice::Closing { reason });
            assert_eq!(lines(Event::Closing(reason)), format!("{notice}\n"));
        }
        assert_eq!(
            lines(Event::Closing(CloseReason::IdleTimeout)),
            "NOTICE CLOSING IDLE_TIMEOUT no answer to PING in time\n"
        );
        assert_eq!(
            lines(Event::ShuttingDown),
            "NOTICE SHUTDOWN the server is going down\n"
        );
    }
}
