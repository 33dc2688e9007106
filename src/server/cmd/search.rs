//! `SEARCH <*|room|user> <words> [LIMIT <count>]`: the messages of a conversation that hold
//! all the words (protocol.md §11 has the query language), newest first, as `HIST` lines,
//! then `OK SEARCH <n>`. The conversation is found, and refused, as `HISTORY` finds it. The
//! count defaults to and may not pass `search_max_results`; the query is given up after
//! `search_timeout_ms`, so that one costly query cannot hold a history read slot for long.

use linechat_protocol::{ErrorCode, HistoryTarget, Reply, SearchWords, Verb};
use tokio::time::timeout;
use tracing::warn;

use super::history::{conversation, recall_found, unavailable};
use super::{Step, not_logged_in};
use crate::server::event::Recalled;
use crate::server::session::Session;
use crate::server::storage::SearchQuery;

pub(super) async fn apply(session: &mut Session, target: HistoryTarget, query: SearchWords) -> Step {
    match Box::pin(search(session, target, query)).await {
        Ok(sent) => Reply::ok_with(Verb::Search, sent).into(),
        Err(refusal) => refusal.into(),
    }
}

/// Runs the search and queues its results; how many were queued.
async fn search(session: &Session, target: HistoryTarget, query: SearchWords) -> Result<u32, Reply> {
    let Some(presence) = session.presence() else {
        return Err(not_logged_in(session));
    };
    let settings = session.settings();
    let max = settings.search_max_results;
    let limit = match query.limit {
        Some(count) if count > max => {
            return Err(bad_arguments(format!("at most {max} results")));
        }
        Some(count) => count,
        None => max,
    };
    let parsed = SearchQuery::parse(&query.words).map_err(bad_arguments)?;
    let conversation = conversation(session, presence, &target).await?;
    let store = &session.server().store;
    let found = match timeout(
        settings.search_timeout(),
        store.search(&conversation, &parsed, limit),
    )
    .await
    {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return Err(unavailable(&error)),
        Err(_) => {
            warn!(words = %query.words, "search timed out");
            return Err(Reply::err(
                ErrorCode::Internal,
                "search took too long; narrow it with more words or longer prefixes",
            ));
        }
    };
    let recalled = match target {
        HistoryTarget::Global => Recalled::Global,
        HistoryTarget::Named(name) => Recalled::Named(name),
    };
    let found = found.into_iter().map(|message| (recalled.clone(), message));
    Ok(recall_found(session, found).await)
}

fn bad_arguments(why: impl std::fmt::Display) -> Reply {
    let usage = Verb::Search.usage();
    Reply::err(ErrorCode::BadArguments, format!("{why}; usage: {usage}"))
}
