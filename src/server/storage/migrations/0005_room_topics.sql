-- Room topics (issue 13): each room's topic is kept with the room, so that it survives a
-- restart and, on a shared store, is what every node loads. All three are NULL while the
-- room has no topic (never set, or cleared).
ALTER TABLE rooms ADD COLUMN topic TEXT;
-- Who set it, as they spelled their name.
ALTER TABLE rooms ADD COLUMN topic_by TEXT;
-- When it was set, Unix milliseconds.
ALTER TABLE rooms ADD COLUMN topic_at BIGINT;
