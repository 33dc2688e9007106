-- Message ids are given where a message is accepted, before it reaches the writer, so that
-- the node, the database and every device know it by one id from the start. A node hands
-- them out from blocks of consecutive ids it reserves from this counter ahead of need
-- (src/server/storage/ids.rs), as nodes sharing a PostgreSQL store do: a restarted node
-- starts above every block reserved before, so no id is given out twice, stored or not.
--
-- Ids still grow in the order one node accepts messages, but messages reach the writer in
-- any order (two sessions take ids 5 and 6, and 6 is written first), and a queued private
-- message is a row of `messages` wherever its id falls. A chunk keeps its messages in id
-- order, but chunks and rows of one conversation may cover overlapping ranges of ids (a
-- message written in the batch after one accepted after it, a queued row, or on a shared
-- store the blocks of several nodes), so a chunk may span a row of its conversation,
-- whatever 0004 says: reads merge a conversation's rows and chunks message by message, by
-- id (src/server/storage/reader.rs), and history reads in id order all the same.

CREATE TABLE message_ids (
    -- The last id reserved, over `messages` and `chunks`.
    last INTEGER NOT NULL
);
INSERT INTO message_ids (last)
SELECT COALESCE(MAX(id), 0) FROM (
    SELECT MAX(id) AS id FROM messages
    UNION ALL
    SELECT MAX(id) AS id FROM chunks
) AS latest;
