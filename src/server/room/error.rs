//! What a request to the room table or to a room can come to besides success.

use linechat_protocol::Name;

/// Why a request about a room was refused. Each front-end words it its own way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("there is no room {0}")]
    NoSuchRoom(Name),
    /// The room exists (its name as created) and the asker is not in it.
    #[error("you are not in {0}")]
    NotMember(Name),
    /// A join of a room the joiner is in on the same connection.
    #[error("you are in {0}")]
    AlreadyMember(Name),
    #[error("{room} has {members} members, its most")]
    Full { room: Name, members: usize },
    /// A creation of a room that exists (its name as created), or is being created.
    #[error("{0} already exists")]
    Exists(Name),
    /// The server holds `max_rooms` rooms.
    #[error("the server holds {0} rooms, its most")]
    TooMany(usize),
    /// The server-wide bucket of room creations is empty for `wait_secs` more.
    #[error(
        "rooms are created at most {per_minute} per minute on this server; \
         try again in {wait_secs} s"
    )]
    TooManyCreated { per_minute: u32, wait_secs: u64 },
    #[error(transparent)]
    Storage(#[from] RoomStorageError),
    /// The room table is gone (the server is shutting down).
    #[error("the server is unavailable")]
    Unavailable,
}

/// What the store could not do for a room, with the reason a client may be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomStorageError {
    #[error("{room} could not be stored: {reason}")]
    Create { room: Name, reason: String },
    #[error("{room} could not be looked up: {reason}")]
    LookUp { room: Name, reason: String },
    #[error("the topic of {room} could not be stored: {reason}")]
    Topic { room: Name, reason: String },
}
