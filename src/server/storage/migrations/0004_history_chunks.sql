-- Chunked history (issue 10): a row per message cost the writer more than a private message
-- costs the rest of the server. History is now written as chunks: one row per conversation
-- per batch (group commit), holding that conversation's messages of the batch in id order.
-- Rows of `messages` stay as they are and are read with the chunks, merged by id; private
-- messages queued for an offline user (`pending`) are still rows of their own there.
--
-- Message ids are one sequence over both tables, handed out by the writer in the order
-- messages arrive, so that a conversation's messages order by id across rows and chunks. A
-- chunk never spans a row of its own conversation: a conversation's queued row in the middle
-- of a batch ends its chunk, and the messages after it start another.
--
-- `body` holds the messages in id order, each as four unsigned LEB128 varints and the text:
--   1. its id less the previous message's (the first's: less `first_id`, so 0);
--   2. its sent_at (Unix milliseconds) less the previous message's (the first's: less 0),
--      zigzag-encoded (0, -1, 1, -2, ... as 0, 1, 2, 3, ...);
--   3. its sender: k >= 1 for the k-th name this chunk spelled out (at most 64 are), or 0
--      followed by the name's length in bytes (a varint) and the name in UTF-8;
--   4. the text's length in bytes, followed by the text in UTF-8.
-- (src/server/storage/chunk.rs encodes and decodes it.)

CREATE TABLE chunks (
    -- The id of its last (newest) message.
    id           INTEGER PRIMARY KEY,
    -- An id of the `conversations` table, as in `messages`.
    conversation INTEGER NOT NULL,
    -- The id of its first message, and how many messages it holds.
    first_id     INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    -- The oldest and newest sent_at of its messages (Unix milliseconds): retention by age
    -- deletes a chunk once its newest message is too old.
    first_at     BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    body         BLOB NOT NULL
);

-- HISTORY walks a conversation's chunks newest first, counting messages, without reading
-- their bodies.
CREATE INDEX chunks_by_conversation ON chunks (conversation, id, first_id, count);
