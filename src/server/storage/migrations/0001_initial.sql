-- Names are stored twice: `*_key` is the lower-case form that makes them unique regardless of
-- case (portable, unlike SQLite's COLLATE NOCASE), the other column keeps the spelling shown.

CREATE TABLE accounts (
    name_key      TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL -- Unix milliseconds
);

CREATE TABLE rooms (
    name_key   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    creator    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Rooms a registered user is in; guests' memberships are not kept.
CREATE TABLE memberships (
    account_key TEXT NOT NULL,
    room_key    TEXT NOT NULL,
    PRIMARY KEY (account_key, room_key)
);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    -- '*' for global messages, 'room:<room key>', or 'pm:<key> <key>' with the two keys sorted.
    target        TEXT NOT NULL,
    sender        TEXT NOT NULL,
    -- Private messages only: who it is for.
    recipient_key TEXT,
    body          TEXT NOT NULL,
    sent_at       BIGINT NOT NULL,
    -- 1 while a private message to an offline user waits for their next login.
    pending       INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX messages_by_target ON messages (target, id);
CREATE INDEX messages_pending ON messages (recipient_key) WHERE pending = 1;
