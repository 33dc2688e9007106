-- Cheaper history writes (issue 10): messages are filed under a small integer for their
-- conversation instead of its text key ('pm:<key> <key>' is 37 characters for two guests).
-- The key was stored in every row and again in the index HISTORY reads by, which every
-- message updates; an integer makes both rows and index entries a fraction of the size.
-- Keys are resolved once per conversation by the writer, which keeps them in memory.

CREATE TABLE conversations (
    id  INTEGER PRIMARY KEY,
    -- As `target` was: '*', 'room:<room key>', 'pm:<key> <key>' (or 'legacy-pm:...').
    key TEXT NOT NULL UNIQUE
);
INSERT INTO conversations (key) SELECT DISTINCT target FROM messages ORDER BY target;

-- No foreign key to `conversations`: checking it would cost every insert a lookup, and the
-- writer is the only one to file messages. Conversation rows are never deleted, so an id is
-- never reused for another conversation.
CREATE TABLE messages_new (
    id            INTEGER PRIMARY KEY,
    conversation  INTEGER NOT NULL,
    sender        TEXT NOT NULL,
    -- Private messages queued for an offline user: who it is for. Not written for other
    -- messages, whose conversation says it (rows written before this may have it).
    recipient_key TEXT,
    body          TEXT NOT NULL,
    sent_at       BIGINT NOT NULL,
    -- 1 while a private message to an offline user waits for their next login.
    pending       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO messages_new (id, conversation, sender, recipient_key, body, sent_at, pending)
    SELECT messages.id, conversations.id, sender, recipient_key, body, sent_at, pending
    FROM messages JOIN conversations ON conversations.key = messages.target
    ORDER BY messages.id;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;

CREATE INDEX messages_by_conversation ON messages (conversation, id);
CREATE INDEX messages_pending ON messages (recipient_key) WHERE pending = 1;
