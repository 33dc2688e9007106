-- SEARCH's full-text index: one entry per stored message (rows and chunks alike), its rowid
-- the message's id. An FTS5 table that keeps its own copy of the text rather than a
-- contentless one: a contentless table can only forget an entry given its original text,
-- which retention, deleting chunks by SQL alone, does not have; with the copy, entries are
-- deleted by rowid. The conversation is a column the query filters on, not a token.
-- Diacritics are kept, as the server's own tokens (`search.rs`) keep them. Prefixes of 2 and
-- 3 characters have index entries of their own: without them a short prefix (`w1*`) merges
-- the lists of every word that starts with it, hundreds of milliseconds on a million
-- messages, against a few with them.
CREATE VIRTUAL TABLE message_search USING fts5(
    text,
    conversation UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 0',
    prefix = '2 3'
);

-- The rows (queued private messages) are indexed here; the chunks cannot be decoded in SQL:
-- the writer indexes them at its next start, once, and deletes this row.
INSERT INTO message_search (rowid, text, conversation)
    SELECT id, body, conversation FROM messages;
CREATE TABLE search_backfill (pending INTEGER NOT NULL);
INSERT INTO search_backfill (pending) SELECT 1 FROM chunks LIMIT 1;
