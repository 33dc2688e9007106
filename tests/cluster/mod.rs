//! Clustered linechat (issue 12): nodes in this process, joined through a real
//! `nats-server -js` started by the test and sharing one PostgreSQL database (a fresh one per
//! test, of the test binary's own PostgreSQL server), with line clients on different nodes.

mod bursts;
mod failures;
mod message_ids;
mod one_chat;
mod partitions;
mod shared_store;
mod topics;

pub use crate::postgres_support::Postgres;
pub use crate::support::nats::NatsServer;
use crate::support::{Client, Server, ServerProcess, TestServer, eventually};
use linechat::server::session::FrontEnd;

/// A cluster's nodes, their NATS server and the URL of their database. The nodes go first
/// when it is dropped.
pub struct Nodes {
    pub nodes: Vec<TestServer>,
    pub nats: NatsServer,
    pub database: String,
}

/// The node timeout the failure tests use: short, so that a lost node is seen quickly.
pub const NODE_TIMEOUT_SECS: u64 = 2;

impl Nodes {
    /// `count` nodes, `n1`, `n2`, ..., on a new NATS server and a new database of the shared
    /// PostgreSQL server; every node is up (and subscribed) before any client logs in.
    pub fn start(count: usize) -> Self {
        Self::start_on(NatsServer::start(), count, |_| {})
    }

    /// The same on `nats`, with each node's settings changed by `configure`.
    pub fn start_on(
        nats: NatsServer,
        count: usize,
        configure: impl Fn(&mut linechat::settings::Settings),
    ) -> Self {
        Self::start_with(nats, Postgres::shared().database(), count, configure)
    }

    /// The same on `nats` and the database at `database`.
    pub fn start_with(
        nats: NatsServer,
        database: String,
        count: usize,
        configure: impl Fn(&mut linechat::settings::Settings),
    ) -> Self {
        let mut cluster = Self {
            nodes: Vec::new(),
            nats,
            database,
        };
        for n in 1..=count {
            cluster.add_with(&format!("n{n}"), &configure);
        }
        cluster
    }

    /// Starts another node named `name` (a restarted node keeps its name).
    pub fn add(&mut self, name: &str) -> &TestServer {
        self.add_with(name, |_| {})
    }

    /// The same, with the node's settings changed by `configure`.
    pub fn add_with(
        &mut self,
        name: &str,
        configure: impl FnOnce(&mut linechat::settings::Settings),
    ) -> &TestServer {
        let settings = self.node_settings(name, configure);
        self.nodes.push(TestServer::with(settings));
        self.nodes.last().expect("just added")
    }

    /// Starts another node named `name` that also serves the front-end `F`, at its
    /// `front_end_addr`.
    pub fn add_serving<F: FrontEnd + 'static>(&mut self, name: &str) -> &TestServer {
        let settings = self.node_settings(name, |_| {});
        self.nodes.push(TestServer::with_front_end::<F>(settings));
        self.nodes.last().expect("just added")
    }

    /// The settings of node `name` of this cluster, then changed by `configure`.
    fn node_settings<C: FnOnce(&mut linechat::settings::Settings)>(
        &self,
        name: &str,
        configure: C,
    ) -> impl FnOnce(&mut linechat::settings::Settings) + use<C> {
        let (url, database, name) = (self.nats.url(), self.database.clone(), name.to_owned());
        move |settings| {
            settings.nats_url = Some(url);
            settings.database_url = Some(database);
            settings.node_name = Some(name);
            settings.node_timeout_secs = NODE_TIMEOUT_SECS;
            configure(settings);
        }
    }

    pub fn node(&self, n: usize) -> &TestServer {
        &self.nodes[n]
    }

    /// The arguments that make the `linechat` binary node `name` of this cluster, for a node
    /// that is a process of its own (to be killed, frozen or cut off).
    pub fn process_args(&self, name: &str) -> Vec<String> {
        let (nats, timeout) = (self.nats.url(), NODE_TIMEOUT_SECS.to_string());
        let args = [
            "--nats",
            &nats,
            "--database-url",
            &self.database,
            "--node-name",
            name,
        ];
        let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        args.extend(["--node-timeout-secs".to_owned(), timeout]);
        args
    }

    /// Node `name` of this cluster as the `linechat` binary.
    pub fn process(&self, name: &str) -> ServerProcess {
        let args = self.process_args(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerProcess::start_with(&args, &[])
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.nodes.clear();
    }
}

/// Waits until `client`'s `USERS` is `expected`: what other nodes say arrives in its time.
pub async fn users_become(client: &mut Client, expected: &str) {
    eventually(&format!("USERS to be {expected:?}"), async || {
        (reply_to(client, "USERS").await == expected).then_some(())
    })
    .await;
}

/// Sends `command` and returns its answer, skipping the presence notices that may come first
/// (from other nodes, in their own time).
pub async fn reply_to(client: &mut Client, command: &str) -> String {
    client.send(command).await;
    loop {
        let line = client.line().await;
        if !line.starts_with("NOTICE ONLINE ") && !line.starts_with("NOTICE OFFLINE ") {
            return line;
        }
    }
}

/// A client logged in as guest `name` on `node`. A user is online from the moment its login
/// is taken, so it may hear of others before its own `OK` (protocol.md §6): in a cluster,
/// of those whom its node hears of from other nodes just then.
pub async fn guest(node: &TestServer, name: &str) -> Client {
    let mut client = node.connect().await;
    let answer = reply_to(&mut client, &format!("NICK {name}")).await;
    assert_eq!(answer, format!("OK NICK {name}"));
    client.logged_in_as(name);
    client
}

/// Logs in guest `name` on `node`, and has each of `watchers` read its `NOTICE ONLINE`.
pub async fn guest_seen(node: &TestServer, name: &str, watchers: &mut [&mut Client]) -> Client {
    let client = guest(node, name).await;
    for watcher in watchers {
        watcher.expect(&format!("NOTICE ONLINE {name}")).await;
    }
    client
}

/// The subjects the node named `node` is subscribed to, as NATS sees them.
pub fn subscriptions_of(nats: &NatsServer, node: &str) -> Vec<String> {
    let connz: serde_json::Value =
        serde_json::from_str(&nats.monitor("/connz?subs=1")).expect("JSON");
    let connections = connz["connections"].as_array().cloned().unwrap_or_default();
    let name = format!("linechat {node}");
    connections
        .iter()
        .filter(|connection| connection["name"] == name.as_str())
        .flat_map(|connection| {
            let subjects = connection["subscriptions_list"].as_array();
            subjects.cloned().unwrap_or_default()
        })
        .filter_map(|subject| subject.as_str().map(str::to_owned))
        .collect()
}

/// Waits until a node that just started knows the users already online, `expected` (its
/// `USERS` with a probe of its own, `probe`), so that their notices are not news to the users
/// who log in on it next. Returns the probe, logged in.
pub async fn caught_up(node: &TestServer, probe: &str, expected: &str) -> Client {
    let mut client = node.connect().await;
    assert_eq!(
        reply_to(&mut client, &format!("NICK {probe}")).await,
        format!("OK NICK {probe}")
    );
    users_become(&mut client, expected).await;
    client
}
