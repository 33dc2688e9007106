-- Room topics: as ../0005_room_topics.sql. All three are NULL while the room has no topic.
ALTER TABLE rooms
    ADD COLUMN topic    TEXT,
    ADD COLUMN topic_by TEXT,
    ADD COLUMN topic_at BIGINT;
