-- History and queued messages belong to identities, not names (issue 9): an account gets a
-- stable id, and private conversations are filed under the ids of their two sides
-- ('pm:<key> <key>', each key 'a<account id>' or 'g<guest session>'), so that a name taken by
-- someone else later reads nothing of its earlier owner's.

CREATE TABLE accounts_with_ids (
    id            INTEGER PRIMARY KEY,
    name_key      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
INSERT INTO accounts_with_ids (name_key, name, password_hash, created_at)
    SELECT name_key, name, password_hash, created_at FROM accounts ORDER BY created_at;
DROP TABLE accounts;
ALTER TABLE accounts_with_ids RENAME TO accounts;

-- Messages still waiting for an account are now addressed to its id.
UPDATE messages SET recipient_key = (
    SELECT 'a' || accounts.id FROM accounts WHERE accounts.name_key = messages.recipient_key)
WHERE pending = 1;
DELETE FROM messages WHERE pending = 1 AND recipient_key IS NULL;

-- Who was behind a name in an older private conversation cannot be told any more: those
-- conversations are kept (retention prunes them) but no HISTORY reads them.
UPDATE messages SET target = 'legacy-' || target WHERE target LIKE 'pm:%';
