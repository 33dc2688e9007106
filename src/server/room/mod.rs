//! Rooms: the `RoomsActor` owns the room table (`table.rs`), and each room with members has a
//! `RoomActor` that owns its member list and fans its messages out (`members.rs`). Sessions
//! hold the handles, `Rooms` and `Room`.

mod error;
mod members;
mod table;

pub use error::RoomError;
pub use members::Room;
pub use table::{Joined, MAX_TOPIC_BYTES, RoomLimits, RoomMembers, RoomSummary, RoomTopic, Rooms};
pub(crate) use table::{KnownTopic, RemoteRooms};
