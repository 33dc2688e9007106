//! The encoding of a history chunk: the messages one conversation received in one batch,
//! stored as one row of `chunks` (migration 0004 describes the table). One row per
//! conversation per batch instead of one per message is what makes history cheap to write.
//!
//! The body is the chunk's messages in id order, each as:
//!
//! | bytes | what |
//! | --- | --- |
//! | 4 | its id less the chunk's `first_id`, unsigned little-endian |
//! | 8 | when it was sent, Unix milliseconds, signed little-endian |
//! | 2 | the sender's name's length in bytes, unsigned little-endian |
//! | n | the sender's name, UTF-8 |
//! | 4 | the text's length in bytes, unsigned little-endian |
//! | n | the text, UTF-8 |

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
}

/// Why a chunk's message cannot be added: its id is too far from the chunk's first, or a
/// length does not fit its field. The writer starts a new chunk (or, for a length, a row).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DoesNotFit;

impl ChunkWriter {
    pub fn new(conversation: i64, first: Entry<'_>) -> Result<Self, DoesNotFit> {
        let mut chunk = Self {
            conversation,
            first_id: first.id,
            last_id: first.id,
            count: 0,
            first_at: first.at,
            last_at: first.at,
            body: Vec::with_capacity(256),
        };
        chunk.push(first)?;
        Ok(chunk)
    }

    /// Appends a message; ids must grow. On an error the chunk is unchanged.
    pub fn push(&mut self, entry: Entry<'_>) -> Result<(), DoesNotFit> {
        let offset = u32::try_from(entry.id - self.first_id).map_err(|_| DoesNotFit)?;
        let from = u16::try_from(entry.from.len()).map_err(|_| DoesNotFit)?;
        let text = u32::try_from(entry.text.len()).map_err(|_| DoesNotFit)?;
        debug_assert!(self.count == 0 || entry.id > self.last_id);
        let body = &mut self.body;
        body.reserve(18 + entry.from.len() + entry.text.len());
        body.extend_from_slice(&offset.to_le_bytes());
        body.extend_from_slice(&entry.at.to_le_bytes());
        body.extend_from_slice(&from.to_le_bytes());
        body.extend_from_slice(entry.from.as_bytes());
        body.extend_from_slice(&text.to_le_bytes());
        body.extend_from_slice(entry.text.as_bytes());
        self.last_id = entry.id;
        self.count += 1;
        self.first_at = self.first_at.min(entry.at);
        self.last_at = self.last_at.max(entry.at);
        Ok(())
    }
}

/// The messages of a chunk's body, in order. A body that does not decode (which only a
/// damaged database gives) ends the iteration where it stops making sense.
pub(super) fn entries(first_id: i64, body: &[u8]) -> Entries<'_> {
    Entries { first_id, body }
}

pub(super) struct Entries<'a> {
    first_id: i64,
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
        let offset = u32::from_le_bytes(self.take_array()?);
        let at = i64::from_le_bytes(self.take_array()?);
        let from = usize::from(u16::from_le_bytes(self.take_array()?));
        let from = std::str::from_utf8(self.take(from)?).ok()?;
        let text = usize::try_from(u32::from_le_bytes(self.take_array()?)).ok()?;
        let text = std::str::from_utf8(self.take(text)?).ok()?;
        Some(Entry {
            id: self.first_id + i64::from(offset),
            at,
            from,
            text,
        })
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.body.split_at_checked(n)?;
        self.body = rest;
        Some(taken)
    }

    fn take_array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
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
        let written = [
            entry(10, 1_000, "alice", "hi"),
            entry(12, 999, "Bob", ""),
            entry(40, 1_005, "alice", "ünïcödé and a longer text"),
        ];
        let mut chunk = ChunkWriter::new(7, written[0]).unwrap();
        for e in &written[1..] {
            chunk.push(*e).unwrap();
        }
        assert_eq!((chunk.first_id, chunk.last_id, chunk.count), (10, 40, 3));
        assert_eq!((chunk.first_at, chunk.last_at), (999, 1_005));
        let read: Vec<_> = entries(chunk.first_id, &chunk.body).collect();
        assert_eq!(read, written);
    }

    #[test]
    fn an_id_too_far_from_the_first_does_not_fit() {
        let mut chunk = ChunkWriter::new(1, entry(1, 0, "a", "x")).unwrap();
        let far = entry(1 + (1 << 32), 0, "a", "y");
        assert_eq!(chunk.push(far), Err(DoesNotFit));
        assert_eq!(chunk.count, 1);
    }

    #[test]
    fn a_damaged_body_stops_where_it_stops_making_sense() {
        let mut chunk = ChunkWriter::new(1, entry(1, 0, "a", "first")).unwrap();
        chunk.push(entry(2, 0, "a", "second")).unwrap();
        let cut = &chunk.body[..chunk.body.len() - 1];
        let read: Vec<_> = entries(1, cut).map(|e| e.text).collect();
        assert_eq!(read, ["first"]);
    }
}
