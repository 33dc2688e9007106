-- SEARCH's full-text index: one entry per stored message (rows and chunks alike). The words
-- are the server's tokens of the text (`search.rs`) through the 'simple' configuration (no
-- stemming, no stop words), so that a query matches what was written, in any language.
CREATE TABLE message_search (
    id           BIGINT PRIMARY KEY,
    conversation BIGINT NOT NULL,
    words        TSVECTOR NOT NULL
);
CREATE INDEX message_search_words ON message_search USING GIN (words);
CREATE INDEX message_search_by_conversation ON message_search (conversation, id);

-- The rows (queued private messages) are indexed here; the chunks cannot be decoded in SQL:
-- the writer indexes them at its next start, once, and deletes this row.
INSERT INTO message_search (id, conversation, words)
    SELECT id, conversation, to_tsvector('simple', body) FROM messages;
CREATE TABLE search_backfill (pending INTEGER NOT NULL);
INSERT INTO search_backfill (pending) SELECT 1 FROM chunks LIMIT 1;
