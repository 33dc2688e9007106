//! The `ServerProcessor`: routes a logged-in user's commands to the actor that owns the state
//! they touch, and cleans up after a session ends.

use tokio::sync::{mpsc, oneshot};
use tracing::info;

use std::time::Duration;

use super::accounts::{Accounts, LoginLimits};
use super::member::Member;
use super::room::{RoomLimits, RoomRequest, Rooms};
use super::storage::{Loaded, Store};
use super::user::{UserRequest, Users};
use crate::common::{Command, Departure, ErrorCode, Name, Reply};
use crate::connection::OutputBudget;
use crate::settings::Settings;

#[derive(Debug)]
enum ServerRequest {
    Execute {
        member: Member,
        command: Command,
        reply: oneshot::Sender<Reply>,
    },
    Disconnect {
        member: Member,
        rooms: Vec<Name>,
        how: Departure,
    },
}

/// What a session holds to talk to the server: the router, and the account and user
/// processors and the store that its login and history steps use directly.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    tx: mpsc::UnboundedSender<ServerRequest>,
    pub accounts: Accounts,
    pub users: Users,
    pub store: Store,
    /// Makes each connection's outbox, counted against the server-wide output budget.
    pub output: OutputBudget,
}

impl ServerHandle {
    /// Starts every actor of the server, with what was loaded from the store.
    pub fn spawn(settings: &Settings, store: Store, loaded: Loaded) -> Self {
        let limits = LoginLimits {
            per_ip: settings.login_failures_per_ip,
            per_account: settings.login_failures_per_account,
            window: Duration::from_secs(settings.login_failure_window_secs),
        };
        let registered = loaded
            .accounts
            .iter()
            .map(|(id, name, _)| (*id, name.clone()))
            .collect();
        let accounts = Accounts::spawn(
            settings.password_hash_workers,
            limits,
            store.clone(),
            loaded.accounts,
        );
        let users = Users::spawn(store.clone(), accounts.clone(), registered);
        let room_limits = RoomLimits {
            max_rooms: settings.max_rooms,
            expiry: settings.room_expiry(),
            max_members: settings.max_room_members,
        };
        let rooms = Rooms::spawn(users.clone(), store.clone(), loaded.rooms, room_limits);
        // Unbounded: a session awaits each command's reply before it sends the next one.
        let (tx, rx) = mpsc::unbounded_channel();
        let processor = ServerProcessor {
            users: users.clone(),
            rooms,
        };
        tokio::spawn(processor.run(rx));
        let output = OutputBudget::spawn(settings.output_budget());
        info!(bytes = output.limit_bytes(), "output budget");
        Self {
            tx,
            accounts,
            users,
            store,
            output,
        }
    }

    /// Runs one chat command for `member` and returns its final reply.
    pub async fn execute(&self, member: &Member, command: Command) -> Reply {
        Self::answer(self.submit(member, command)).await
    }

    /// Sends one chat command on its way; its final reply comes on the returned channel.
    pub fn submit(&self, member: &Member, command: Command) -> oneshot::Receiver<Reply> {
        let (reply, answer) = oneshot::channel();
        let request = ServerRequest::Execute {
            member: member.clone(),
            command,
            reply,
        };
        // If the router is gone, the request and its sender are dropped: the answer below
        // turns that into `ERR INTERNAL`.
        let _ = self.tx.send(request);
        answer
    }

    /// The reply to a submitted command.
    pub async fn answer(mut answer: oneshot::Receiver<Reply>) -> Reply {
        Self::answer_ref(&mut answer).await
    }

    /// The same, without taking the receiver: cancel-safe, for use in `select!`.
    pub async fn answer_ref(answer: &mut oneshot::Receiver<Reply>) -> Reply {
        answer.await.unwrap_or_else(|_| unavailable())
    }

    /// Takes `member` offline and out of `rooms`. Synchronous, so that it can run while a
    /// session's task unwinds.
    pub fn disconnect(&self, member: Member, rooms: Vec<Name>, how: Departure) {
        let _ = self
            .tx
            .send(ServerRequest::Disconnect { member, rooms, how });
    }
}

fn unavailable() -> Reply {
    Reply::err(ErrorCode::Internal, "the server is unavailable; try again")
}

struct ServerProcessor {
    users: Users,
    rooms: Rooms,
}

impl ServerProcessor {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<ServerRequest>) {
        while let Some(request) = rx.recv().await {
            match request {
                ServerRequest::Execute {
                    member,
                    command,
                    reply,
                } => self.route(member, command, reply),
                ServerRequest::Disconnect { member, rooms, how } => {
                    for room in rooms {
                        self.rooms.leave_quietly(member.clone(), room);
                    }
                    self.users.logout(member, how);
                }
            }
        }
    }

    /// Forwards the command with its reply sender, so that the router never waits.
    fn route(&self, member: Member, command: Command, reply: oneshot::Sender<Reply>) {
        match command {
            Command::Msg { text } => self.users.send(UserRequest::Broadcast {
                from: member,
                text,
                reply,
            }),
            Command::Pm { to, text } => self.users.send(UserRequest::Private {
                from: member,
                to,
                text,
                reply,
            }),
            Command::Users => self.users.send(UserRequest::List { reply }),
            Command::CreateRoom { room } => self.rooms.send(RoomRequest::Create {
                member,
                room,
                reply,
            }),
            Command::JoinRoom { room } => self.rooms.send(RoomRequest::Join {
                member,
                room,
                reply,
            }),
            Command::LeaveRoom { room } => self.rooms.send(RoomRequest::Leave {
                member,
                room,
                reply: Some(reply),
            }),
            Command::ListRooms => self.rooms.send(RoomRequest::List { reply }),
            Command::ListRoomUsers { room } => {
                self.rooms.send(RoomRequest::Members { room, reply })
            }
            Command::RoomMessage { room, text } => self.rooms.send(RoomRequest::Say {
                member,
                room,
                text,
                reply,
            }),
            // The session answers these itself; they carry no shared state.
            other @ (Command::Register { .. }
            | Command::Login { .. }
            | Command::Nick { .. }
            | Command::History { .. }
            | Command::Ping { .. }
            | Command::Pong { .. }
            | Command::Help { .. }
            | Command::Quit { .. }) => {
                let message = format!("{} is not routed to the server", other.verb());
                let _ = reply.send(Reply::err(ErrorCode::Internal, message));
            }
        }
    }
}
