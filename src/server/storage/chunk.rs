//! The encoding of a history chunk: the messages one conversation received in one batch,
//! stored as one row of `chunks` (migration 0004 describes the table). One row per
//! conversation per batch instead of one per message is what makes history cheap to write;
//! a compact body makes it cheap to write twice (the write-ahead log, then the database).
//!
//! The body is the chunk's messages in id order, each as four unsigned LEB128 varints (7 bits
//! a byte, low bits first, the high bit set on all bytes but the last) and the text:
//!
//! 1. its id less the previous message's (the first's: less the chunk's `first_id`, so 0);
//! 2. its `sent_at` (Unix milliseconds) less the previous message's (the first's: less 0),
//!    zigzag-encoded (0, -1, 1, -2, ... as 0, 1, 2, 3, ...);
//! 3. its sender: `k` >= 1 for the `k`th name this chunk spelled out, or 0 followed by the
//!    name's length in bytes (a varint) and the name (UTF-8), which then counts as spelled;
//! 4. the text's length in bytes, followed by the text (UTF-8).
//!
//! A message of 64 characters takes about 68 bytes.

/// A chunk's body takes no message once it is this long (so it holds at most this and one
/// message more, besides the rare ones inserted out of order: `ChunkWriter::insert`): a `HISTORY` page reads whole chunks, which must stay small however many
/// messages a batch has for one conversation. With 16 KiB pages a chunk this size also fits
/// in its page. A busy conversation's batch is still a chunk of a hundred or more messages.
pub(super) const MAX_BODY: usize = 12 * 1024;

/// Names a chunk spells out at most, and refers to after; later new names are spelled out
/// every time, so that finding a sender stays a short scan.
const NAMES_REFERRED_TO: usize = 64;

/// One message of a chunk, borrowed from its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry<'a> {
    pub id: i64,
    pub at: i64,
    pub from: &'a str,
    pub text: &'a str,
}

/// A chunk being written: one conversation's messages of a batch.
#[derive(Debug)]
pub(super) struct ChunkWriter {
    pub conversation: i64,
    pub first_id: i64,
    pub last_id: i64,
    pub count: i64,
    /// The oldest and newest `sent_at` of its messages: retention by age keeps a chunk while
    /// its newest message is young enough.
    pub first_at: i64,
    pub last_at: i64,
    pub body: Vec<u8>,
    /// The last message's `sent_at`.
    previous_at: i64,
    /// Where the names spelled out so far are in `body`.
    names: Vec<(usize, usize)>,
}

/// Why a message cannot be added to a chunk: the chunk is full, or the message's id is not
/// after the chunk's last. The writer starts a new chunk.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DoesNotFit;

impl ChunkWriter {
    pub fn new(conversation: i64, first: Entry<'_>) -> Self {
        let mut chunk = Self {
            conversation,
            first_id: first.id,
            last_id: first.id,
            count: 0,
            first_at: first.at,
            last_at: first.at,
            body: Vec::with_capacity(256),
            previous_at: 0,
            names: Vec::new(),
        };
        chunk.append(first);
        chunk
    }

    /// Appends a message, whose id must be after the last one's, unless the chunk is full.
    pub fn push(&mut self, entry: Entry<'_>) -> Result<(), DoesNotFit> {
        if entry.id <= self.last_id || self.body.len() >= MAX_BODY {
            return Err(DoesNotFit);
        }
        self.append(entry);
        Ok(())
    }

    /// Adds a message whatever its id, full or not: after the last one's, it is appended;
    /// before, the chunk is encoded again with it in its place. Ids are given where messages
    /// are accepted, by many sessions at once, so one can reach the writer after a message
    /// accepted later; rare enough that encoding a chunk again costs nothing that shows.
    pub fn insert(&mut self, entry: Entry<'_>) {
        if entry.id > self.last_id {
            self.append(entry);
            return;
        }
        let body = std::mem::take(&mut self.body);
        let mut sorted: Vec<Entry<'_>> = entries(self.first_id, &body).collect();
        let place = sorted.partition_point(|e| e.id < entry.id);
        sorted.insert(place, entry);
        let mut chunk = ChunkWriter::new(self.conversation, sorted[0]);
        for e in &sorted[1..] {
            chunk.append(*e);
        }
        *self = chunk;
    }

    fn append(&mut self, entry: Entry<'_>) {
        let id_step = (entry.id
            - if self.count == 0 {
                self.first_id
            } else {
                self.last_id
            }) as u64;
        let at_step = entry.at.wrapping_sub(self.previous_at);
        put_varint(&mut self.body, id_step);
        put_varint(&mut self.body, ((at_step << 1) ^ (at_step >> 63)) as u64);
        let from = entry.from.as_bytes();
        let known = self
            .names
            .iter()
            .position(|&(start, len)| len == from.len() && &self.body[start..start + len] == from);
        match known {
            Some(index) => put_varint(&mut self.body, index as u64 + 1),
            None => {
                put_varint(&mut self.body, 0);
                put_varint(&mut self.body, from.len() as u64);
                if self.names.len() < NAMES_REFERRED_TO {
                    self.names.push((self.body.len(), from.len()));
                }
                self.body.extend_from_slice(from);
            }
        }
        put_varint(&mut self.body, entry.text.len() as u64);
        self.body.extend_from_slice(entry.text.as_bytes());
        self.last_id = entry.id;
        self.previous_at = entry.at;
        self.count += 1;
        self.first_at = self.first_at.min(entry.at);
        self.last_at = self.last_at.max(entry.at);
    }
}

/// Appends `value` as an unsigned LEB128 varint. (Four lines; no crate among the
/// dependencies has it, and the format needs nothing more.)
fn put_varint(body: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        body.push(value as u8 | 0x80);
        value >>= 7;
    }
    body.push(value as u8);
}

/// The messages of a chunk's body, in order. A body that does not decode (which only a
/// damaged database gives) ends the iteration where it stops making sense.
pub(super) fn entries(first_id: i64, body: &[u8]) -> Entries<'_> {
    Entries {
        id: first_id,
        at: 0,
        names: Vec::new(),
        body,
    }
}

pub(super) struct Entries<'a> {
    /// The previous message's id and time (at first: the chunk's first id, and 0).
    id: i64,
    at: i64,
    /// The names spelled out so far.
    names: Vec<&'a str>,
    body: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.body.is_empty() {
            return None;
        }
        let entry = self.decode();
        if entry.is_none() {
            self.body = &[];
        }
        entry
    }
}

impl<'a> Entries<'a> {
    fn decode(&mut self) -> Option<Entry<'a>> {
        let id = self.id.checked_add(i64::try_from(self.varint()?).ok()?)?;
        let at_step = self.varint()?;
        let at = self
            .at
            .wrapping_add((at_step >> 1) as i64 ^ -((at_step & 1) as i64));
        let from = match self.varint()? {
            0 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let name = std::str::from_utf8(self.take(len)?).ok()?;
                if self.names.len() < NAMES_REFERRED_TO {
                    self.names.push(name);
                }
                name
            }
            k => *self.names.get(usize::try_from(k - 1).ok()?)?,
        };
        let len = usize::try_from(self.varint()?).ok()?;
        let text = std::str::from_utf8(self.take(len)?).ok()?;
        (self.id, self.at) = (id, at);
        Some(Entry { id, at, from, text })
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.body.split_first()?;
            self.body = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.body.split_at_checked(n)?;
        self.body = rest;
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(id: i64, at: i64, from: &'a str, text: &'a str) -> Entry<'a> {
        Entry { id, at, from, text }
    }

    #[test]
    fn a_chunk_decodes_to_what_was_written() {
        let long = "x".repeat(300);
        let written = [
            entry(10, 1_000, "alice", "hi"),
            entry(12, 999, "Bob", ""),
            entry(40, 1_005, "alice", "ünïcödé and a longer text"),
            entry(1 << 40, -5, "Bob", &long),
            entry(i64::MAX, i64::MAX, "carol", "last"),
        ];
        let mut chunk = ChunkWriter::new(7, written[0]);
        for e in &written[1..] {
            chunk.push(*e).unwrap();
        }
        assert_eq!(
            (chunk.first_id, chunk.last_id, chunk.count),
            (10, i64::MAX, 5)
        );
        assert_eq!((chunk.first_at, chunk.last_at), (-5, i64::MAX));
        let read: Vec<_> = entries(chunk.first_id, &chunk.body).collect();
        assert_eq!(read, written);
    }

    #[test]
    fn a_message_costs_a_few_bytes_beside_its_text() {
        let text = "t".repeat(64);
        let mut chunk = ChunkWriter::new(1, entry(100, 1_700_000_000_000, "alice", &text));
        let before = chunk.body.len();
        chunk
            .push(entry(103, 1_700_000_000_002, "alice", &text))
            .unwrap();
        assert_eq!(chunk.body.len() - before, 4 + 64);
    }

    #[test]
    fn names_past_the_referred_ones_are_spelled_out() {
        let names: Vec<String> = (0..NAMES_REFERRED_TO + 3)
            .map(|i| format!("n{i}"))
            .collect();
        let mut chunk = ChunkWriter::new(1, entry(1, 0, &names[0], "x"));
        for (i, name) in names.iter().enumerate().skip(1).chain([(0, &names[0])]) {
            let id = chunk.last_id + 1;
            chunk.push(entry(id, i as i64, name, "x")).unwrap();
        }
        let last = names.last().unwrap();
        chunk.push(entry(chunk.last_id + 1, 0, last, "x")).unwrap();
        let read: Vec<_> = entries(1, &chunk.body).map(|e| e.from.to_owned()).collect();
        let mut wanted = names.clone();
        wanted.push(names[0].clone());
        wanted.push(last.clone());
        assert_eq!(read, wanted);
    }

    #[test]
    fn an_id_not_after_the_last_does_not_fit() {
        let mut chunk = ChunkWriter::new(1, entry(5, 0, "a", "x"));
        assert_eq!(chunk.push(entry(5, 0, "a", "y")), Err(DoesNotFit));
        assert_eq!(chunk.count, 1);
    }

    #[test]
    fn a_message_inserted_out_of_order_reads_back_in_id_order() {
        let mut chunk = ChunkWriter::new(1, entry(5, 50, "a", "five"));
        chunk.push(entry(8, 80, "b", "eight")).unwrap();
        chunk.insert(entry(3, 30, "c", "three"));
        chunk.insert(entry(6, 60, "a", "six"));
        chunk.insert(entry(9, 90, "b", "nine"));
        let read: Vec<_> = entries(chunk.first_id, &chunk.body)
            .map(|e| (e.id, e.at, e.from, e.text))
            .collect();
        assert_eq!(
            read,
            [
                (3, 30, "c", "three"),
                (5, 50, "a", "five"),
                (6, 60, "a", "six"),
                (8, 80, "b", "eight"),
                (9, 90, "b", "nine"),
            ]
        );
        assert_eq!((chunk.first_id, chunk.last_id, chunk.count), (3, 9, 5));
        assert_eq!((chunk.first_at, chunk.last_at), (30, 90));
    }

    #[test]
    fn a_full_chunk_takes_no_more() {
        let text = "t".repeat(1000);
        let mut chunk = ChunkWriter::new(1, entry(1, 0, "a", &text));
        let mut id = 1;
        while chunk.push(entry(id + 1, 0, "a", &text)).is_ok() {
            id += 1;
        }
        assert!(chunk.body.len() >= MAX_BODY && chunk.body.len() < MAX_BODY + 1010);
        assert_eq!(entries(1, &chunk.body).count() as i64, chunk.count);
    }

    #[test]
    fn a_damaged_body_stops_where_it_stops_making_sense() {
        let mut chunk = ChunkWriter::new(1, entry(1, 0, "a", "first"));
        chunk.push(entry(2, 0, "a", "second")).unwrap();
        let cut = &chunk.body[..chunk.body.len() - 1];
        let read: Vec<_> = entries(1, cut).map(|e| e.text).collect();
        assert_eq!(read, ["first"]);
    }
}
