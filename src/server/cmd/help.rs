//! `HELP [verb]`: one `HELP <usage>` line per verb, then `OK HELP`. Verbs this server does
//! not offer (`NICK` when guests are not allowed) are left out.

use linechat_protocol::{Reply, Verb};

use super::Step;
use crate::server::session::Session;

pub(super) async fn apply(session: &mut Session, verb: Option<Verb>) -> Step {
    let settings = session.settings();
    let verbs = match verb {
        Some(verb) => vec![verb],
        None => Verb::ALL
            .into_iter()
            .filter(|&verb| verb != Verb::Nick || settings.allow_guests)
            .collect(),
    };
    for verb in verbs {
        super::send(session, Reply::Help(verb));
    }
    Reply::ok(Verb::Help).into()
}
