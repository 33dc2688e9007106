//! Removes telnet protocol bytes from a byte stream, so `telnet localhost 8080` works like `nc`.

use bytes::{BufMut, BytesMut};

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DONT: u8 = 254;
const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;

/// Where the filter is inside a telnet sequence. The state survives between reads because a
/// sequence may be split across two of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Data,
    /// After a CR: `CR LF` and telnet's `CR NUL` both end a line.
    Cr,
    Iac,
    /// After `IAC WILL|WONT|DO|DONT`: one option byte follows.
    Option,
    /// Inside `IAC SB ... IAC SE`, with the count of bytes seen.
    Sub(usize),
    SubIac(usize),
}

/// Longest subnegotiation accepted; real ones (window size, terminal type) are far shorter.
const MAX_SUBNEGOTIATION: usize = 64;

/// What a line ending of two bytes (`CR LF`, telnet's `CR NUL`) becomes in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnding {
    Lf,
    CrLf,
}

/// A streaming filter that drops IAC sequences and NUL bytes and turns `CR NUL` into `\n`.
///
/// A byte 255 never occurs in UTF-8, so dropping IAC sequences cannot damage text. A line
/// ending always ends a line, even inside what looks like a telnet sequence, so that a stray
/// 255 costs at most its own line.
#[derive(Debug, Default)]
pub struct TelnetFilter {
    state: State,
}

impl TelnetFilter {
    fn sub_len(&self) -> usize {
        match self.state {
            State::Sub(len) | State::SubIac(len) => len,
            _ => 0,
        }
    }

    /// Appends the data bytes of `input` to `output`.
    pub fn filter(&mut self, input: &[u8], output: &mut BytesMut) {
        self.filter_with(input, output, LineEnding::Lf);
    }

    /// The same, but a line ending `CR LF` (or `CR NUL`) stays `CR LF`: for a protocol whose
    /// line limit counts the line ending, which a decoder can then see.
    pub fn filter_keeping_cr(&mut self, input: &[u8], output: &mut BytesMut) {
        self.filter_with(input, output, LineEnding::CrLf);
    }

    fn filter_with(&mut self, mut input: &[u8], output: &mut BytesMut, ending: LineEnding) {
        output.reserve(input.len());
        while !input.is_empty() {
            if self.state == State::Data {
                // Text up to the next byte that may begin a telnet sequence or a line ending
                // is copied as it is, in one go: most input is nothing but that.
                let run = memchr::memchr3(IAC, CR, NUL, input).unwrap_or(input.len());
                output.extend_from_slice(&input[..run]);
                input = &input[run..];
            }
            if let Some((&byte, rest)) = input.split_first() {
                self.step(byte, output, ending);
                input = rest;
            }
        }
    }

    /// Takes one byte through the state machine.
    fn step(&mut self, byte: u8, output: &mut BytesMut, ending: LineEnding) {
        self.state = match (self.state, byte) {
            (State::Data, IAC) => State::Iac,
            (State::Data, CR) => State::Cr,
            (State::Data, NUL) => State::Data,
            (State::Data, _) => {
                output.put_u8(byte);
                State::Data
            }
            (State::Cr, LF | NUL) => {
                if ending == LineEnding::CrLf {
                    output.put_u8(CR);
                }
                output.put_u8(LF);
                State::Data
            }
            (State::Cr, CR) => {
                output.put_u8(CR);
                State::Cr
            }
            (State::Cr, IAC) => {
                output.put_u8(CR);
                State::Iac
            }
            (State::Cr, _) => {
                output.put_u8(CR);
                output.put_u8(byte);
                State::Data
            }
            // A line ending inside a sequence means the 255 was a stray byte, not telnet
            // (Latin-1 'ÿ', say): keep it so that its line fails as bad UTF-8, and keep
            // the line ending so that only that line is lost.
            (State::Iac | State::Option | State::Sub(_) | State::SubIac(_), LF) => {
                output.put_u8(IAC);
                output.put_u8(LF);
                State::Data
            }
            (State::Iac | State::Option | State::Sub(_) | State::SubIac(_), CR) => {
                output.put_u8(IAC);
                State::Cr
            }
            (State::Iac, WILL..=DONT) => State::Option,
            (State::Iac, SB) => State::Sub(0),
            // An escaped 255 is not UTF-8 either; let the line fail as bad UTF-8.
            (State::Iac, IAC) => {
                output.put_u8(IAC);
                State::Data
            }
            (State::Iac, _) | (State::Option, _) => State::Data,
            (State::Sub(_) | State::SubIac(_), _) if self.sub_len() >= MAX_SUBNEGOTIATION => {
                output.put_u8(IAC);
                State::Data
            }
            (State::Sub(len), IAC) => State::SubIac(len + 1),
            (State::Sub(len), _) => State::Sub(len + 1),
            (State::SubIac(_), SE) => State::Data,
            (State::SubIac(len), _) => State::Sub(len + 1),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut filter = TelnetFilter::default();
        let mut out = BytesMut::new();
        for chunk in chunks {
            filter.filter(chunk, &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(run(&[b"MSG hi\n"]), b"MSG hi\n");
        assert_eq!(run(&["MSG héllo\n".as_bytes()]), "MSG héllo\n".as_bytes());
    }

    #[test]
    fn negotiation_is_dropped_even_when_split() {
        // IAC DO ECHO, IAC WILL SUPPRESS-GO-AHEAD, then text.
        assert_eq!(run(&[&[IAC, 253, 1, IAC], &[251, 3], b"hi\n"]), b"hi\n");
        // Subnegotiation: IAC SB NAWS 0 80 0 24 IAC SE.
        assert_eq!(
            run(&[&[IAC, SB, 31, 0, 80], &[0, 24, IAC, SE], b"ok\n"]),
            b"ok\n"
        );
    }

    #[test]
    fn a_stray_255_costs_only_its_line() {
        assert_eq!(run(&[b"a\xff\nb\n"]), b"a\xff\nb\n");
        assert_eq!(run(&[b"a\xff", b"\r\nb\n"]), b"a\xff\nb\n");
        // An unterminated subnegotiation ends at the line ending or at its size limit.
        assert_eq!(
            run(&[&[b'a', IAC, SB, b'x', b'\n', b'b', b'\n']]),
            b"a\xff\nb\n"
        );
        let mut long = vec![IAC, SB];
        long.extend([b'x'; 100]);
        long.extend(b"ok\n");
        let out = run(&[&long]);
        assert!(out.ends_with(b"ok\n") && out.len() < 64, "{out:?}");
    }

    #[test]
    fn line_endings_are_normalised() {
        assert_eq!(run(&[b"a\r\n", b"b\r", b"\0", b"c\n"]), b"a\nb\nc\n");
        assert_eq!(run(&[b"a\rb\n"]), b"a\rb\n");
    }

    #[test]
    fn keeping_cr_leaves_a_two_byte_line_ending_two_bytes() {
        let mut filter = TelnetFilter::default();
        let mut out = BytesMut::new();
        for chunk in [&b"a\r"[..], b"\nb\r", b"\0", b"c\n", b"d\re\r\n"] {
            filter.filter_keeping_cr(chunk, &mut out);
        }
        assert_eq!(&out[..], b"a\r\nb\r\nc\nd\re\r\n");
    }

    proptest::proptest! {
        /// Copying plain runs at once gives what taking every byte through the state
        /// machine gives, however the input is split.
        #[test]
        fn runs_are_copied_as_the_state_machine_would(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(IAC), proptest::prelude::Just(CR),
                    proptest::prelude::Just(LF), proptest::prelude::Just(NUL),
                    proptest::prelude::Just(SB), proptest::prelude::Just(SE),
                    proptest::prelude::Just(WILL), proptest::prelude::any::<u8>()
                ],
                0..200,
            ),
            split in 0usize..200,
        ) {
            let mut byte_by_byte = TelnetFilter::default();
            let mut expected = BytesMut::new();
            for &byte in &bytes {
                byte_by_byte.step(byte, &mut expected, LineEnding::Lf);
            }
            let split = split.min(bytes.len());
            let (first, second) = bytes.split_at(split);
            proptest::prop_assert_eq!(run(&[first, second]), expected.to_vec());
        }
    }
}
