-- Read markers, as in SQLite's 0007: how far an account has read each conversation.
CREATE TABLE read_markers (
    account      BIGINT NOT NULL,
    conversation TEXT NOT NULL,
    target       TEXT NOT NULL,
    message_id   BIGINT NOT NULL,
    PRIMARY KEY (account, conversation)
);
