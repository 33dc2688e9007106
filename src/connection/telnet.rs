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
    /// Inside `IAC SB ... IAC SE`.
    Sub,
    SubIac,
}

/// A streaming filter that drops IAC sequences and NUL bytes and turns `CR NUL` into `\n`.
///
/// A byte 255 never occurs in UTF-8, so dropping IAC sequences cannot damage text.
#[derive(Debug, Default)]
pub struct TelnetFilter {
    state: State,
}

impl TelnetFilter {
    /// Appends the data bytes of `input` to `output`.
    pub fn filter(&mut self, input: &[u8], output: &mut BytesMut) {
        output.reserve(input.len());
        for &byte in input {
            self.state = match (self.state, byte) {
                (State::Data, IAC) => State::Iac,
                (State::Data, CR) => State::Cr,
                (State::Data, NUL) => State::Data,
                (State::Data, _) => {
                    output.put_u8(byte);
                    State::Data
                }
                (State::Cr, LF | NUL) => {
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
                (State::Iac, WILL..=DONT) => State::Option,
                (State::Iac, SB) => State::Sub,
                // An escaped 255 is not UTF-8 either; let the line fail as bad UTF-8.
                (State::Iac, IAC) => {
                    output.put_u8(IAC);
                    State::Data
                }
                (State::Iac, _) | (State::Option, _) => State::Data,
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, _) => State::Sub,
            };
        }
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
    fn line_endings_are_normalised() {
        assert_eq!(run(&[b"a\r\n", b"b\r", b"\0", b"c\n"]), b"a\nb\nc\n");
        assert_eq!(run(&[b"a\rb\n"]), b"a\rb\n");
    }
}
