//! One client's socket: framing of incoming lines and the bounded outbox of outgoing ones.

mod budget;
mod codec;
mod outbox;
mod telnet;

pub use budget::OutputBudget;
pub use codec::{Frame, LineCodec, MIN_READ_BUFFER};
#[cfg(test)]
pub(crate) use outbox::wordings;
pub use outbox::{
    Content, Delivery, Form, Outbox, OutboxFull, Wording, Writer, encode_display, outbox,
};
