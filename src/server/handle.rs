//! The `ServerHandle`: the handles of the server's actors, which every session holds. A
//! session talks to the owner of the state a command touches directly: the directory of
//! users, the room table, a room it is in, the account store, the storage writer.

use std::time::Duration;

use tracing::info;

use super::accounts::{Accounts, LoginLimits};
use super::cluster::{self, Cluster, Inbound};
use super::room::{RoomLimits, Rooms};
use super::storage::{Loaded, Store};
use super::user::Users;
use crate::connection::OutputBudget;
use crate::settings::Settings;

/// What a session holds to reach the server's actors. Cheap to clone: each field is a
/// channel sender or a shared counter.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub accounts: Accounts,
    pub users: Users,
    pub rooms: Rooms,
    pub store: Store,
    /// This node's place in the cluster, when clustered.
    pub cluster: Option<Cluster>,
    /// Makes each connection's outbox, counted against the server-wide output budget.
    pub output: OutputBudget,
}

impl ServerHandle {
    /// Starts every actor of the server, with what was loaded from the store; clustered,
    /// also this node's cluster task, which hands the directory and the room table what the
    /// other nodes say.
    pub fn spawn(
        settings: &Settings,
        store: Store,
        loaded: Loaded,
        cluster: Option<(Cluster, Inbound)>,
    ) -> Self {
        let (cluster, events) = cluster.unzip();
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
        let users = Users::spawn(
            store.clone(),
            accounts.clone(),
            registered,
            settings.presence_max_online,
            cluster.clone(),
        );
        let room_limits = RoomLimits {
            max_rooms: settings.max_rooms,
            expiry: settings.room_expiry(),
            max_members: settings.max_room_members,
            created_per_minute: settings.rooms_created_per_minute_total,
        };
        let rooms = Rooms::spawn(
            users.clone(),
            store.clone(),
            loaded.rooms,
            loaded.topics,
            room_limits,
            cluster.clone(),
        );
        if let (Some(cluster), Some(events)) = (cluster.clone(), events) {
            cluster::spawn_node(cluster, events, users.clone(), rooms.clone());
        }
        let output = OutputBudget::spawn(settings.output_budget());
        info!(bytes = output.limit_bytes(), "output budget");
        Self {
            accounts,
            users,
            rooms,
            store,
            cluster,
            output,
        }
    }
}
