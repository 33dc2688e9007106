//! Rooms: the `RoomsActor` owns the room table (`rooms_actor.rs`, with its topics in
//! `topic.rs`, its limit of creations in `creations.rs` and what it hears from the other
//! nodes in `remote.rs`), and each room with members has a `RoomActor` that owns its member
//! list and fans its messages out (`room.rs`). Sessions hold the handles, `Rooms`
//! (`rooms.rs`) and `Room`. What they answer besides success is a `RoomError` (`error.rs`).

mod creations;
mod error;
mod remote;
#[expect(
    clippy::module_inception,
    reason = "one file per type: `room.rs` holds `Room` and its actor, as `rooms.rs` holds `Rooms`"
)]
mod room;
mod rooms;
mod rooms_actor;
#[cfg(test)]
mod tests;
mod topic;

pub use error::{RoomError, RoomStorageError};
pub(crate) use remote::{KnownTopic, RemoteRooms};
pub use room::Room;
pub use rooms::{Joined, RoomLimits, RoomMembers, RoomSummary, RoomTopic, Rooms};
pub use topic::MAX_TOPIC_BYTES;
