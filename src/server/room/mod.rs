//! Rooms: the `RoomProcessor` owns the room table, and each room with members has a
//! `RoomManager` task that owns its member list and fans its messages out.

mod manager;
mod processor;

pub use manager::Room;
pub use processor::{Joined, RoomLimits, Rooms};
