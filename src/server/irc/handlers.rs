//! The IRC command table, in the style of ergo's `irc/commands.go`: each verb names its
//! handler, the parameters it needs at least (fewer is `461`), and whether it may come before
//! registration (otherwise `451`). An unknown verb is `421`.

use futures::future::BoxFuture;

use super::message::Message;
use super::{Flow, Irc, channel, messaging, query, registration};

/// A handler: runs one message on the connection.
type Run = for<'a> fn(&'a mut Irc, Message) -> BoxFuture<'a, Flow>;

struct Handler {
    min_params: usize,
    before_registration: bool,
    run: Run,
}

/// `verb => handler, min params, usable before registration;`
macro_rules! handlers {
    ($($verb:literal => $handler:path, $min:literal, $early:literal;)*) => {
        fn lookup(verb: &str) -> Option<Handler> {
            match verb {
                $($verb => Some(Handler {
                    min_params: $min,
                    before_registration: $early,
                    run: |irc, message| Box::pin($handler(irc, message)),
                }),)*
                _ => None,
            }
        }

        /// Every verb the table holds.
        #[cfg(test)]
        const VERBS: &[&str] = &[$($verb),*];
    };
}

handlers! {
    "AUTHENTICATE" => registration::authenticate, 1, true;
    "AWAY" => query::away, 0, false;
    "CAP" => registration::cap, 1, true;
    "ISON" => query::ison, 1, false;
    "JOIN" => channel::join, 1, false;
    "LIST" => channel::list, 0, false;
    "MODE" => query::mode, 1, false;
    "MOTD" => registration::motd, 0, false;
    "NAMES" => channel::names, 0, false;
    "NICK" => registration::nick, 0, true;
    "NOTICE" => messaging::notice, 0, false;
    "PART" => channel::part, 1, false;
    "PASS" => registration::pass, 1, true;
    "PING" => registration::ping, 1, true;
    "PONG" => registration::pong, 0, true;
    "PRIVMSG" => messaging::privmsg, 0, false;
    "QUIT" => registration::quit, 0, true;
    "TOPIC" => channel::topic, 1, false;
    "USER" => registration::user, 4, true;
    "USERHOST" => query::userhost, 1, false;
    "WHO" => query::who, 0, false;
    "WHOIS" => query::whois, 1, false;
}

/// Runs one message: the numeric for an unknown verb, a connection not registered yet or
/// missing parameters, else its handler.
pub(super) async fn dispatch(irc: &mut Irc, message: Message) -> Flow {
    let Some(handler) = lookup(&message.verb) else {
        irc.numeric("421", &[&message.verb], "Unknown command");
        return Flow::Continue;
    };
    if !handler.before_registration && !irc.welcomed {
        irc.numeric("451", &[], "You have not registered");
        return Flow::Continue;
    }
    if message.params.len() < handler.min_params {
        irc.numeric("461", &[&message.verb], "Not enough parameters");
        return Flow::Continue;
    }
    (handler.run)(irc, message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_verb_is_found() {
        let mut sorted = VERBS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, VERBS);
        for verb in VERBS {
            assert!(lookup(verb).is_some(), "{verb}");
        }
        assert!(
            lookup("privmsg").is_none(),
            "verbs are upper-cased before lookup"
        );
        assert!(lookup("KILL").is_none());
    }
}
