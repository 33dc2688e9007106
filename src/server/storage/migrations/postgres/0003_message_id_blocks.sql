-- Message ids are given where a message is accepted: each node hands them out from blocks of
-- consecutive ids it reserves from `message_ids` ahead of need, as
-- ../0006_message_id_blocks.sql says (src/server/storage/ids.rs); 0001's words on the table
-- (a block per batch) do not hold. Chunks and rows of one conversation may then cover
-- overlapping ranges of ids; reads merge them by id. The schema is the same; the table
-- says what it is for.
COMMENT ON TABLE message_ids IS
    'The last message id reserved: nodes hand out ids from blocks they reserve from it.';
