-- Read markers: how far an account has read each conversation, the id of the last message it
-- read there (`MARKREAD`). A marker only moves forward. The conversation is named by its key,
-- as in `conversations`, so that a marker may be set before the conversation has a row
-- there; `target` is how the account named it (`*`, a room or a user), for `UNREAD`.
CREATE TABLE read_markers (
    account      INTEGER NOT NULL,
    conversation TEXT NOT NULL,
    target       TEXT NOT NULL,
    message_id   INTEGER NOT NULL,
    PRIMARY KEY (account, conversation)
);
