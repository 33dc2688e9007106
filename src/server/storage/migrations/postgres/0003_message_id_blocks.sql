-- Message ids are given where a message is accepted: each node hands them out from blocks of
-- consecutive ids it reserves from `message_ids` ahead of need, as
-- ../0006_message_id_blocks.sql says (src/server/storage/ids.rs); 0001's words on the table
-- (a block per batch) do not hold. A node moves on to a fresh block every batch window, so
-- that the ids of messages accepted on different nodes follow the order they were accepted
-- in, to within a window. Chunks and rows of one conversation may cover overlapping ranges
-- of ids; reads merge them by id. The schema is the same; the table says what it is for.
COMMENT ON TABLE message_ids IS
    'The last message id reserved: nodes hand out ids from blocks they reserve from it.';
