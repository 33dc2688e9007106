//! Any bytes, cut into reads of any sizes, into the line decoder: never a panic, no line over
//! the limit, and never more buffered than the limit plus one read.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use linechat::connection::{Frame, LineCodec};
use tokio_util::codec::Decoder;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, mut rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut % 32) + 1;
    let mut codec = LineCodec::new(MAX);
    let mut buffer = BytesMut::new();
    while !rest.is_empty() {
        let (read, after) = rest.split_at(chunk.min(rest.len()));
        rest = after;
        buffer.extend_from_slice(read);
        while let Some(frame) = codec.decode(&mut buffer).expect("decoding never fails") {
            if let Frame::Line(line) = frame {
                assert!(line.len() <= MAX && !line.contains('\n'));
            }
        }
        assert!(codec.buffered() <= MAX + chunk + 1);
    }
    while let Some(_frame) = codec.decode_eof(&mut buffer).expect("decoding never fails") {}
});
