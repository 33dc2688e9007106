//! The line decoder: telnet filtering, then tokio-util's `LinesCodec` with a maximum length.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

use super::telnet::TelnetFilter;

/// What the decoder yields. Bad input is an item, not a decode error: `FramedRead` ends the
/// stream on the first error, and one bad line must not cost the client its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Line(String),
    /// The line was longer than the maximum; it is discarded up to its newline.
    TooLong,
    /// The line was not valid UTF-8; it is discarded.
    BadUtf8,
}

/// Decodes client lines. Bytes pass through a [`TelnetFilter`] into a buffer of their own that
/// `LinesCodec` reads, so the codec sees plain text whatever the client is.
#[derive(Debug)]
pub struct LineCodec {
    telnet: TelnetFilter,
    filtered: BytesMut,
    lines: LinesCodec,
    /// Whether the last read filled the read buffer.
    full_read: bool,
    /// Whether the maximum counts the line ending, whose `CR`, if any, is then kept for the
    /// decoder to count ([`LineCodec::counting_line_ending`]).
    ending_counted: bool,
}

/// The read buffer's size between these bounds follows the client's pace.
pub const MIN_READ_BUFFER: usize = 128;
const MAX_READ_BUFFER: usize = 16 * 1024;

impl LineCodec {
    /// Lines of at most `max_line_length` bytes, the line ending not counted.
    pub fn new(max_line_length: usize) -> Self {
        Self {
            telnet: TelnetFilter::default(),
            filtered: BytesMut::new(),
            lines: LinesCodec::new_with_max_length(max_line_length),
            full_read: false,
            ending_counted: false,
        }
    }

    /// Lines of at most `max_bytes` bytes with their line ending, `CR LF` or `LF` alike (IRC's
    /// rule). The decoder counts what comes before the `LF`, so the `CR` of a `CR LF` is kept
    /// for it to count, and taken off the line with the `LF`.
    pub fn counting_line_ending(max_bytes: usize) -> Self {
        Self {
            lines: LinesCodec::new_with_max_length(max_bytes.saturating_sub(1)),
            ending_counted: true,
            ..Self::new(0)
        }
    }

    /// Bytes held while waiting for the end of a line: never more than the maximum line
    /// length plus one read.
    pub fn buffered(&self) -> usize {
        self.filtered.len()
    }

    fn absorb(&mut self, src: &mut BytesMut) {
        if !src.is_empty() {
            self.full_read = src.len() == src.capacity();
            if self.ending_counted {
                self.telnet.filter_keeping_cr(src, &mut self.filtered);
            } else {
                self.telnet.filter(src, &mut self.filtered);
            }
            src.clear();
        }
    }

    /// Sizes the read buffer for the next read, which comes next: double it after a read
    /// that filled it (a client sending in bulk), back to small after one that did not (an
    /// idle or typing client need not hold more).
    fn size_read_buffer(&self, src: &mut BytesMut) {
        let capacity = src.capacity();
        if self.full_read && capacity < MAX_READ_BUFFER {
            *src = BytesMut::with_capacity((capacity * 2).clamp(MIN_READ_BUFFER, MAX_READ_BUFFER));
        } else if !self.full_read && capacity > MIN_READ_BUFFER {
            *src = BytesMut::with_capacity(MIN_READ_BUFFER);
        }
    }

    fn frame(result: Result<Option<String>, LinesCodecError>) -> Option<Frame> {
        match result {
            Ok(line) => line.map(Frame::Line),
            Err(LinesCodecError::MaxLineLengthExceeded) => Some(Frame::TooLong),
            Err(LinesCodecError::Io(_)) => Some(Frame::BadUtf8),
        }
    }
}

impl Decoder for LineCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        self.absorb(src);
        let frame = Self::frame(self.lines.decode(&mut self.filtered));
        if frame.is_none() {
            if self.filtered.is_empty() && self.filtered.capacity() > 0 {
                // Everything read is consumed: an idle connection should not hold a buffer.
                self.filtered = BytesMut::new();
            }
            if src.is_empty() {
                self.size_read_buffer(src);
            }
        }
        Ok(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        self.absorb(src);
        Ok(Self::frame(self.lines.decode_eof(&mut self.filtered)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Frame> {
        let mut src = BytesMut::from(input);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut src).unwrap() {
            frames.push(frame);
        }
        frames
    }

    fn line(text: &str) -> Frame {
        Frame::Line(text.into())
    }

    #[test]
    fn splits_lines_and_strips_line_endings() {
        let mut codec = LineCodec::new(64);
        assert_eq!(
            decode_all(&mut codec, b"one\r\ntwo\nthree\r\0"),
            [line("one"), line("two"), line("three")]
        );
    }

    #[test]
    fn overlong_line_is_reported_once_and_the_next_line_survives() {
        let mut codec = LineCodec::new(8);
        let mut frames = decode_all(&mut codec, b"0123456789abcdef");
        frames.extend(decode_all(&mut codec, b"still the long line\nok\n"));
        assert_eq!(frames, [Frame::TooLong, line("ok")]);
    }

    #[test]
    fn counting_the_line_ending_takes_a_cr_lf_as_two_bytes_and_a_lf_as_one() {
        let mut codec = LineCodec::counting_line_ending(8);
        // Six bytes and CR LF, seven and LF: eight in all, the most.
        assert_eq!(
            decode_all(&mut codec, b"123456\r\n1234567\n"),
            [line("123456"), line("1234567")]
        );
        // Seven and CR LF, eight and LF: nine.
        assert_eq!(
            decode_all(&mut codec, b"1234567\r\n12345678\nok\r\n"),
            [Frame::TooLong, Frame::TooLong, line("ok")]
        );
        // The same when the CR and the LF come in reads of their own.
        let mut frames = decode_all(&mut codec, b"123456\r");
        frames.extend(decode_all(&mut codec, b"\n1234567\r"));
        frames.extend(decode_all(&mut codec, b"\n"));
        assert_eq!(frames, [line("123456"), Frame::TooLong]);
    }

    #[test]
    fn invalid_utf8_is_reported_and_the_next_line_survives() {
        let mut codec = LineCodec::new(64);
        assert_eq!(
            decode_all(&mut codec, b"bad \xc3\x28 bytes\nfine\n"),
            [Frame::BadUtf8, line("fine")]
        );
    }

    #[test]
    fn a_line_split_across_reads_is_reassembled() {
        let mut codec = LineCodec::new(64);
        assert!(decode_all(&mut codec, b"MSG hel").is_empty());
        assert_eq!(decode_all(&mut codec, b"lo\n"), [line("MSG hello")]);
    }

    proptest::proptest! {
        /// The normal suite's share of the framing fuzz target (fuzz/fuzz_targets/framing.rs).
        #[test]
        fn any_bytes_in_any_reads_stay_bounded(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            chunk in 1usize..64,
        ) {
            let mut codec = LineCodec::new(32);
            let mut src = BytesMut::new();
            for read in data.chunks(chunk) {
                src.extend_from_slice(read);
                while let Some(frame) = codec.decode(&mut src).unwrap() {
                    if let Frame::Line(line) = frame {
                        proptest::prop_assert!(line.len() <= 32 && !line.contains('\n'));
                    }
                }
                proptest::prop_assert!(codec.buffered() <= 32 + chunk + 1);
            }
            while codec.decode_eof(&mut src).unwrap().is_some() {}
        }
    }

    #[test]
    fn last_line_without_newline_is_read_at_eof() {
        let mut codec = LineCodec::new(64);
        assert!(decode_all(&mut codec, b"QUIT").is_empty());
        let mut empty = BytesMut::new();
        assert_eq!(codec.decode_eof(&mut empty).unwrap(), Some(line("QUIT")));
    }
}
