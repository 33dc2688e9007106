//! linechat's load generator: many client connections on loopback, the same workload in
//! linechat's protocol, plain IRC or Redis pub/sub, with deliveries per second and latency
//! percentiles from an HDR histogram (the send time travels in each message; the arrival
//! time is the kernel's receive stamp on the receiving socket).
//!
//! `cargo run --release --bin loadgen -- --help` lists the scenarios and their flags.
//! `scripts/bench.sh` runs them against linechat and its peers; see BENCHMARKS.md.

mod conn;
mod cpu;
mod dialect;
mod guests;
mod logins;
mod payload;
mod stats;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::{StreamExt, stream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use conn::{Conn, LineReader};
use dialect::{Dialect, short_name};
use payload::Clock;
use stats::{Report, Tally, Trouble, Window};

#[derive(Debug, Parser)]
#[command(
    about = "Load generator for linechat, IRC servers and Redis pub/sub",
    long_about = "Load generator for linechat, IRC servers and Redis pub/sub.\n\n\
        Opens many client connections on loopback (source addresses rotate over \
        127.0.0.1-250) and reports deliveries per second and latency percentiles from an \
        HDR histogram; each message carries its send time, and the kernel stamps its arrival \
        on the receiving socket. Pin it to its own core with \
        taskset: it runs one worker thread per core it may use. With --server-pid it also \
        reports the CPU use of the server and of itself during the run, and which of them \
        was saturated."
)]
struct Cli {
    /// Server to load; several, comma-separated, for a cluster or an IRC network:
    /// connection `i` goes to the `i`th modulo their number, so a room's members are split
    /// evenly across them, and the two sides of a pair are on different servers.
    #[arg(long, default_value = "127.0.0.1:8080", value_delimiter = ',')]
    addr: Vec<SocketAddr>,
    /// Protocol the server speaks.
    #[arg(long, value_enum, default_value = "linechat")]
    dialect: Dialect,
    /// Name of the target in the report (default: the dialect).
    #[arg(long)]
    target: Option<String>,
    /// Free text stored with the report (e.g. a round number).
    #[arg(long)]
    label: Option<String>,
    /// Append the report to this file as one JSON line.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The server's process id; several, comma-separated, for a server made of several
    /// processes (a cluster's nodes, NATS, PostgreSQL). Its CPU time during the run, and its
    /// memory for `idle`, come from /proc/<pid>: CPU time summed over these processes and
    /// every process they started, memory summed over these processes.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// A receiver gives up after this long without a message. The timeout starts at its
    /// first message; until then it waits for --first-message-secs more once sending began.
    #[arg(long, default_value_t = 10)]
    idle_timeout_secs: u64,
    /// How long a receiver waits for its first message once sending has started.
    #[arg(long, default_value_t = 60)]
    first_message_secs: u64,
    #[command(subcommand)]
    scenario: Scenario,
}

impl Cli {
    /// The server connection `index` goes to.
    fn addr_of(&self, index: usize) -> SocketAddr {
        self.addr[index % self.addr.len()]
    }
}

#[derive(Debug, Clone, Subcommand)]
enum Scenario {
    /// Members in one room; some of them send, everyone receives.
    Fanout {
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Senders (members themselves, except for Redis, whose publishers are extra
        /// connections).
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Messages per sender.
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        /// Messages per second for all senders together; 0 sends as fast as possible.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Message text size in bytes (IRC servers cut lines at 512 bytes).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// In a burst, messages a sender may have in flight (sent, not yet received by one
        /// chosen receiver); 0 for none: unwindowed, as fast as the socket takes.
        #[arg(long, default_value_t = 1000)]
        window: u64,
    },
    /// Pairs of users talking in private messages at once (one sends, the other receives).
    Pm {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Messages per pair.
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        /// Messages per second for all pairs together; 0 sends as fast as possible.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// In a burst, messages a sender may have in flight (sent, not yet received); 0 for
        /// none: unwindowed, as fast as the socket takes.
        #[arg(long, default_value_t = 1000)]
        window: u64,
    },
    /// Logged-in connections that stay quiet, and the server memory they take (needs
    /// --server-pid).
    Idle {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Seconds to let the server settle before its memory is read.
        #[arg(long, default_value_t = 3)]
        settle_secs: u64,
    },
    /// Guest login storm (linechat only): guests log in with NICK one after another, each
    /// connection staying and reading everything it is sent (a NOTICE ONLINE for every later
    /// guest); reports the time the logins take, the server's CPU per login by number online
    /// (needs --server-pid) and, once the notices are delivered, its memory per connection.
    Guests {
        #[arg(long, default_value_t = 10_000)]
        guests: usize,
        /// Logins in flight at once; 1 waits for each OK NICK before the next connects.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// The CPU per login is reported for every slice of this many logins.
        #[arg(long, default_value_t = 1000)]
        slice: usize,
        /// The server's `presence_max_online`: a login is announced to everyone online
        /// while at most this many are, counting the newcomer (0: never). The run waits for
        /// every notice due and counts those missing.
        #[arg(long, default_value_t = 2000)]
        presence_max_online: usize,
        /// Seconds to let the server settle, once the notices are delivered, before its
        /// memory is read.
        #[arg(long, default_value_t = 3)]
        settle_secs: u64,
        /// Stop logging guests in after this many seconds (0: never), and report what was
        /// done by then.
        #[arg(long, default_value_t = 0)]
        give_up_secs: u64,
    },
    /// Login storm (linechat only): accounts REGISTER, then LOGIN, each over a fresh
    /// connection, while a paced fan-out runs; reports logins per second and the chat
    /// latency while the storm lasts, next to the latency before it.
    Logins {
        /// Accounts registered, then logged in.
        #[arg(long, default_value_t = 200)]
        accounts: usize,
        /// Registrations or logins in flight at once.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// Members of the room where the chat goes on.
        #[arg(long, default_value_t = 100)]
        members: usize,
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Chat messages per second for all senders together.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Seconds of chat before the storm, for the baseline latency.
        #[arg(long, default_value_t = 2)]
        warmup_secs: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One worker thread per core the generator may use: pin it with taskset. On one core, a
    // single-threaded runtime does the same work with less synchronisation.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    let mut report = runtime.block_on(run(&cli))?;
    report.target = cli
        .target
        .clone()
        .unwrap_or_else(|| cli.dialect.name().into());
    report.label = cli.label.clone();
    report.check_losses();
    report.print();
    if let Some(path) = &cli.json {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{}", serde_json::to_string(&report)?)?;
    }
    // Do not wait for the tasks still holding connections: the run is over.
    runtime.shutdown_background();
    Ok(())
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    match cli.scenario.clone() {
        Scenario::Fanout {
            members,
            senders,
            messages,
            rate,
            size,
            window,
        } => {
            if senders == 0 || members == 0 {
                bail!("fanout needs at least one member and one sender");
            }
            if cli.dialect.senders_are_members() && senders > members {
                bail!("senders are members here: --senders must not exceed --members");
            }
            let window = if rate == 0 { window } else { 0 };
            let mut report = fanout(cli, members, senders, messages, rate, size, window).await?;
            report.parameters = format!(
                "members={members} senders={senders} messages={messages} rate={rate} \
                 size={size} window={window}"
            );
            Ok(report)
        }
        Scenario::Pm {
            pairs,
            messages,
            rate,
            size,
            window,
        } => {
            let window = if rate == 0 { window } else { 0 };
            let mut report = private_messages(cli, pairs, messages, rate, size, window).await?;
            report.parameters = format!(
                "pairs={pairs} messages={messages} rate={rate} size={size} window={window}"
            );
            Ok(report)
        }
        Scenario::Idle {
            clients,
            settle_secs,
        } => {
            let mut report = idle(cli, clients, Duration::from_secs(settle_secs)).await?;
            report.parameters = format!("clients={clients}");
            Ok(report)
        }
        Scenario::Guests {
            guests,
            concurrency,
            slice,
            presence_max_online,
            settle_secs,
            give_up_secs,
        } => {
            if cli.dialect != Dialect::Linechat {
                bail!("the guest storm speaks linechat's NICK and NOTICE ONLINE");
            }
            if guests == 0 {
                bail!("guests needs at least one guest");
            }
            let storm = guests::Storm {
                guests,
                concurrency: concurrency.max(1),
                slice: slice.max(1),
                presence_max_online,
                settle: Duration::from_secs(settle_secs),
                give_up: (give_up_secs > 0).then(|| Duration::from_secs(give_up_secs)),
            };
            let mut report = guests::run(cli, &storm).await?;
            report.parameters = format!(
                "guests={guests} concurrency={concurrency} slice={slice} \
                 presence-max-online={presence_max_online} give-up-secs={give_up_secs}"
            );
            Ok(report)
        }
        Scenario::Logins {
            accounts,
            concurrency,
            members,
            senders,
            rate,
            size,
            warmup_secs,
        } => {
            if cli.dialect != Dialect::Linechat {
                bail!(
                    "the login storm needs accounts (REGISTER, LOGIN): IRC servers and Redis \
                     have none"
                );
            }
            if senders == 0 || senders > members || rate == 0 {
                bail!("logins needs 1 to --members senders and a --rate above 0");
            }
            let storm = logins::Storm {
                accounts,
                concurrency: concurrency.max(1),
                members,
                senders,
                rate,
                size,
                warmup: Duration::from_secs(warmup_secs),
            };
            let mut report = logins::run(cli, &storm).await?;
            report.parameters = format!(
                "accounts={accounts} concurrency={concurrency} members={members} \
                 senders={senders} rate={rate} size={size}"
            );
            Ok(report)
        }
    }
}

/// What every reader of one run shares.
#[derive(Clone)]
struct Shared {
    dialect: Dialect,
    /// The clock that send and arrival times are measured on.
    clock: Clock,
    idle: Duration,
    first_message: Duration,
    /// When sending started (on `clock`), `u64::MAX` before.
    started: Arc<AtomicU64>,
    trouble: Arc<Trouble>,
    /// The login storm's window, if any.
    window: Option<Arc<Window>>,
    /// The burst senders' bound on messages in flight, if any.
    flows: Option<Arc<Flows>>,
}

impl Shared {
    fn new(cli: &Cli, window: Option<Arc<Window>>) -> Self {
        Self {
            dialect: cli.dialect,
            clock: Clock::start(),
            idle: Duration::from_secs(cli.idle_timeout_secs),
            first_message: Duration::from_secs(cli.first_message_secs),
            started: Arc::new(AtomicU64::new(u64::MAX)),
            trouble: Arc::new(Trouble::default()),
            window,
            flows: None,
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Marks the start of sending, and returns it.
    fn start(&self) -> u64 {
        let now = self.now_ns();
        self.started.store(now, Ordering::Release);
        now
    }
}

/// A burst sender keeps at most `window` messages in flight: sent, but not yet received by
/// its watcher, one receiver chosen to report its progress. Without a bound, a sender
/// faster than the server fills every buffer on the way, and the run measures how a server
/// copes with a huge backlog (InspIRCd, for one, then reads a client's input only once a
/// second) rather than how fast it delivers; the latency becomes the depth of that backlog.
struct Flows {
    window: u64,
    /// Per sender: messages its watcher has received (the next sequence number expected).
    acked: Vec<AtomicU64>,
    wake: Vec<tokio::sync::Notify>,
    /// Per sender: the index of the receiver that watches it.
    watcher: Vec<usize>,
}

impl Flows {
    fn new(window: u64, watcher: Vec<usize>) -> Arc<Self> {
        Arc::new(Self {
            window,
            acked: watcher.iter().map(|_| AtomicU64::new(0)).collect(),
            wake: watcher.iter().map(|_| tokio::sync::Notify::new()).collect(),
            watcher,
        })
    }

    /// The senders that receiver `index` watches.
    fn watched_by(&self, index: usize) -> Vec<u32> {
        (0..self.watcher.len())
            .filter(|&sender| self.watcher[sender] == index)
            .filter_map(|sender| u32::try_from(sender).ok())
            .collect()
    }

    fn ack(&self, sender: usize, seq: u64) {
        self.acked[sender].fetch_max(seq + 1, Ordering::Release);
        self.wake[sender].notify_one();
    }

    fn has_room(&self, sender: usize, seq: u64) -> bool {
        seq < self.acked[sender].load(Ordering::Acquire) + self.window
    }

    async fn wait_for_room(&self, sender: usize, seq: u64) {
        while !self.has_room(sender, seq) {
            self.wake[sender].notified().await;
        }
    }
}

/// How many messages a receiver waits for.
#[derive(Clone)]
enum Goal {
    /// Exactly this many.
    Fixed(u64),
    /// As many as the senders other than `own` will have sent when `done` is set.
    UntilDone {
        sent: Arc<Vec<AtomicU64>>,
        done: Arc<AtomicBool>,
        own: Option<usize>,
    },
    /// None: only read (answering keep-alives, noting errors) until the run ends.
    Drain,
}

impl Goal {
    fn target(&self) -> Option<u64> {
        match self {
            Goal::Fixed(count) => Some(*count),
            Goal::UntilDone { sent, done, own } => done.load(Ordering::Acquire).then(|| {
                sent.iter()
                    .enumerate()
                    .filter(|(sender, _)| Some(*sender) != *own)
                    .map(|(_, count)| count.load(Ordering::Acquire))
                    .sum()
            }),
            Goal::Drain => None,
        }
    }
}

/// How a receiver ended.
struct Received {
    tally: Tally,
    timed_out: bool,
}

/// Reads one connection for the whole run: counts payloads until `goal` is met, answers
/// keep-alive probes, notes error lines and early closes. A receiver's idle timeout starts
/// at its first message: before it, it waits for set-up, then `first_message` after the
/// start of sending.
async fn receive(
    mut reader: LineReader,
    writer: mpsc::Sender<Vec<u8>>,
    shared: Shared,
    goal: Goal,
    watches: Vec<u32>,
) -> Received {
    const TICK: Duration = Duration::from_millis(250);
    let mut tally = Tally::with_window(shared.window.clone());
    let dialect = shared.dialect;
    let clock = shared.clock;
    // When a message was last read, on `clock`.
    let mut last_message_ns = clock.now_ns();
    // One timer for the whole loop, re-armed when it fires: a timer per read would cost about
    // as much as the read.
    let tick = tokio::time::sleep(TICK);
    tokio::pin!(tick);
    loop {
        if goal.target().is_some_and(|target| tally.received >= target) {
            return Received {
                tally,
                timed_out: false,
            };
        }
        let mut pongs = Vec::new();
        let mut read_ns = None;
        let trouble = &shared.trouble;
        let read = reader.read_lines(|line, arrival| {
            if let Some(payload) = payload::decode(line) {
                // One clock reading per read: every line in it was read at once.
                let read_ns = *read_ns.get_or_insert_with(|| clock.now_ns());
                let arrived_ns = clock.arrival_ns(arrival).unwrap_or(read_ns);
                tally.record(&payload, arrived_ns, read_ns);
                if let Some(flows) = &shared.flows
                    && watches.contains(&payload.sender)
                {
                    flows.ack(payload.sender as usize, payload.seq);
                }
            } else if let Some(pong) = dialect.pong(line) {
                pongs.push(pong);
            } else if dialect.is_error(line) {
                trouble.error(line);
            }
        });
        let ticked = tokio::select! {
            biased;
            read = read => match read {
                Ok(true) => false,
                Ok(false) => {
                    shared.trouble.closed("the server closed a connection");
                    return Received {
                        tally,
                        timed_out: false,
                    };
                }
                Err(error) => {
                    shared.trouble.closed(&format!("a connection failed: {error}"));
                    return Received {
                        tally,
                        timed_out: false,
                    };
                }
            },
            () = &mut tick => {
                tick.as_mut().reset(tokio::time::Instant::now() + TICK);
                true
            }
        };
        for pong in pongs {
            let _ = writer.send(pong).await;
        }
        if let Some(read_ns) = read_ns {
            last_message_ns = read_ns;
            tally.reads += 1;
        }
        if !ticked || matches!(goal, Goal::Drain) {
            continue;
        }
        let started = shared.started.load(Ordering::Acquire);
        let since = |ns: u64| Duration::from_nanos(clock.now_ns().saturating_sub(ns));
        let waited_too_long = if tally.received > 0 {
            since(last_message_ns) > shared.idle
        } else {
            started != u64::MAX && since(started) > shared.first_message + shared.idle
        };
        if waited_too_long {
            return Received {
                tally,
                timed_out: true,
            };
        }
    }
}

/// One connection, set up and handed to its reader task.
struct Client {
    writer: mpsc::Sender<Vec<u8>>,
    reader: JoinHandle<Received>,
}

/// Spawns the reader task of a connection that finished its set-up.
fn spawn_reader(conn: Conn, shared: &Shared, index: usize, goal: Goal) -> Client {
    let (reader, writer) = conn.into_parts();
    let goal = match goal {
        Goal::Fixed(0) => Goal::Drain,
        goal => goal,
    };
    let watches = match (&shared.flows, &goal) {
        (Some(flows), Goal::Fixed(_)) => flows.watched_by(index),
        _ => Vec::new(),
    };
    let task = tokio::spawn(receive(
        reader,
        writer.clone(),
        shared.clone(),
        goal,
        watches,
    ));
    Client {
        writer,
        reader: task,
    }
}

/// Opens connections `indices` concurrently; each logs in as `name(i)` if `login`, joins
/// `room` if given, and gets its reader at once (so that set-up traffic, such as other
/// members' joins, is read while the rest connect) with the goal `goal(i)`. Results come
/// back in index order.
async fn open_many(
    cli: &Cli,
    shared: &Shared,
    indices: std::ops::Range<usize>,
    login: bool,
    name: impl Fn(usize) -> String,
    room: Option<&str>,
    goal: impl Fn(usize) -> Goal,
) -> anyhow::Result<Vec<Client>> {
    let dialect = cli.dialect;
    let mut opened: Vec<(usize, Client)> = stream::iter(indices)
        .map(|index| {
            let name = name(index);
            let goal = goal(index);
            async move {
                let mut conn =
                    connect_and_log_in(cli, index, login.then_some(name.as_str())).await?;
                if let Some(room) = room {
                    conn.step(&dialect.join(room, false))
                        .await
                        .with_context(|| format!("{name} joining {room}"))?;
                }
                anyhow::Ok((index, spawn_reader(conn, shared, index, goal)))
            }
        })
        .buffer_unordered(cli.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .context("setting up connections")?;
    opened.sort_by_key(|(index, _)| *index);
    Ok(opened.into_iter().map(|(_, client)| client).collect())
}

/// Opens connection `index` and logs it in as `name`, if given. A connection that the
/// server resets or refuses (a full listen backlog does that) is tried again, twice.
async fn connect_and_log_in(cli: &Cli, index: usize, name: Option<&str>) -> anyhow::Result<Conn> {
    let dialect = cli.dialect;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let mut conn = Conn::open(cli.addr_of(index), index, dialect).await?;
            if let Some(step) = name.and_then(|name| dialect.login(name)) {
                conn.step(&step).await?;
            }
            std::io::Result::Ok(conn)
        }
        .await;
        match result {
            Ok(conn) => return Ok(conn),
            Err(error)
                if attempt < 3
                    && matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::UnexpectedEof
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(error) => {
                return Err(error).with_context(|| match name {
                    Some(name) => {
                        format!(
                            "connecting to {} and logging in as {name}",
                            cli.addr_of(index)
                        )
                    }
                    None => format!("connecting to {}", cli.addr_of(index)),
                });
            }
        }
    }
}

/// How long a sender keeps sending.
#[derive(Clone)]
enum Until {
    /// This many messages.
    Count(u64),
    /// Until `stop` is set; the number sent is kept in `sent[index]`.
    Stopped {
        stop: Arc<AtomicBool>,
        sent: Arc<Vec<AtomicU64>>,
        index: usize,
    },
}

/// What one sender sends: lines made by `line`, one per `period` or, without one, as fast
/// as the connection takes them (in batches of about 16 KiB).
async fn send(
    writer: mpsc::Sender<Vec<u8>>,
    until: Until,
    period: Option<Duration>,
    flow: Option<(Arc<Flows>, usize)>,
    clock: Clock,
    line: impl Fn(u64, u64, &mut Vec<u8>),
) {
    let mut batch = Vec::with_capacity(32 * 1024);
    let mut ticks = period.map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        interval
    });
    let mut seq = 0;
    loop {
        match &until {
            Until::Count(count) if seq >= *count => break,
            Until::Stopped { stop, .. } if stop.load(Ordering::Acquire) => break,
            _ => {}
        }
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        if let Some((flows, sender)) = &flow
            && !flows.has_room(*sender, seq)
        {
            // What is batched must go out before waiting: its receipt is what frees room.
            if !batch.is_empty() && writer.send(std::mem::take(&mut batch)).await.is_err() {
                break;
            }
            flows.wait_for_room(*sender, seq).await;
        }
        line(seq, clock.now_ns(), &mut batch);
        seq += 1;
        if ticks.is_some() || batch.len() >= 16 * 1024 {
            if writer.send(std::mem::take(&mut batch)).await.is_err() {
                break;
            }
            batch.reserve(32 * 1024);
        }
        if let Until::Stopped { sent, index, .. } = &until {
            sent[*index].store(seq, Ordering::Release);
        }
    }
    if !batch.is_empty() {
        let _ = writer.send(batch).await;
    }
}

fn period(rate: u64, senders: usize) -> Option<Duration> {
    (rate > 0).then(|| Duration::from_secs_f64(senders as f64 / rate as f64))
}

/// Waits for the receivers of `clients` that count (`counts(i)`), then ends the other
/// readers, of `clients` and `others`. Every connection stays open until the caller drops
/// its clients: a closed connection would make the server tell everyone else while they
/// are still being measured. Returns the merged tally and the receivers that timed out.
async fn collect(
    clients: &mut [Client],
    counts: impl Fn(usize) -> bool,
    others: &[Client],
) -> (Tally, u64) {
    let mut tally = Tally::with_window(None);
    let mut timed_out = 0;
    for (i, client) in clients.iter_mut().enumerate() {
        if counts(i)
            && let Ok(received) = (&mut client.reader).await
        {
            timed_out += u64::from(received.timed_out);
            tally.merge(received.tally);
        }
    }
    for client in clients.iter().chain(others) {
        client.reader.abort();
    }
    (tally, timed_out)
}

/// The members of one room, the first of them creating it; `goal(i)` for member `i`.
async fn room_members(
    cli: &Cli,
    shared: &Shared,
    members: usize,
    tag: &str,
    room: &str,
    goal: impl Fn(usize) -> Goal,
) -> anyhow::Result<Vec<Client>> {
    let dialect = cli.dialect;
    let member_name = |i: usize| short_name('m', tag, i);
    let mut first = connect_and_log_in(cli, 0, Some(&member_name(0))).await?;
    first
        .step(&dialect.join(room, true))
        .await
        .context("creating the room")?;
    let mut clients = vec![spawn_reader(first, shared, 0, goal(0))];
    clients.extend(open_many(cli, shared, 1..members, true, member_name, Some(room), goal).await?);
    Ok(clients)
}

async fn fanout(
    cli: &Cli,
    members: usize,
    senders: usize,
    messages: u64,
    rate: u64,
    size: usize,
    window: u64,
) -> anyhow::Result<Report> {
    let dialect = cli.dialect;
    let mut shared = Shared::new(cli, None);
    // Each sender is watched by a member other than itself.
    if window > 0 && (members > 1 || !dialect.senders_are_members()) {
        let watcher = (0..senders)
            .map(|sender| {
                if dialect.senders_are_members() {
                    (sender + 1) % members
                } else {
                    sender % members
                }
            })
            .collect();
        shared.flows = Some(Flows::new(window, watcher));
    }
    let setup = Instant::now();
    let tag = run_tag();
    let room: Arc<str> = format!("b{tag}").into();
    let member_sends = |i: usize| dialect.senders_are_members() && i < senders;
    let expected_by = |i: usize| {
        let from = if member_sends(i) {
            senders - 1
        } else {
            senders
        };
        from as u64 * messages
    };
    let mut clients = room_members(cli, &shared, members, &tag, &room, |i| {
        Goal::Fixed(expected_by(i))
    })
    .await?;
    let publishers = if dialect.senders_are_members() {
        Vec::new()
    } else {
        open_many(
            cli,
            &shared,
            members..members + senders,
            false,
            |i| short_name('s', &tag, i),
            None,
            |_| Goal::Drain,
        )
        .await?
    };
    let expected_total: u64 = (0..members).map(expected_by).sum();
    let writers: Vec<_> = if dialect.senders_are_members() {
        clients[..senders]
            .iter()
            .map(|c| c.writer.clone())
            .collect()
    } else {
        publishers.iter().map(|c| c.writer.clone()).collect()
    };

    let setup_seconds = setup.elapsed().as_secs_f64();
    let cpu_before = cpu::snapshot(&cli.server_pid);
    let start_ns = shared.start();
    let period = period(rate, senders);
    let mut sending = Vec::new();
    for (sender, writer) in writers.into_iter().enumerate() {
        let sender_id = u32::try_from(sender)?;
        let room = room.clone();
        sending.push(tokio::spawn(send(
            writer,
            Until::Count(messages),
            period,
            shared.flows.clone().map(|flows| (flows, sender)),
            shared.clock,
            move |seq, now, out| {
                let text = payload::encode(sender_id, seq, now, size);
                dialect.room_message(&room, &text, out);
            },
        )));
    }
    let (tally, timed_out) = collect(&mut clients, |i| expected_by(i) > 0, &publishers).await;
    let cpu_after = cpu::snapshot(&cli.server_pid);
    for task in sending {
        task.abort();
    }
    let mut report = Report::from_tally("fanout", expected_total, start_ns, &tally);
    report.timed_out = timed_out;
    report.note_trouble(&shared.trouble);
    report.setup_seconds = setup_seconds;
    report.cpu = Some(cpu::usage(&cpu_before, &cpu_after, &cli.server_pid));
    Ok(report)
}

async fn private_messages(
    cli: &Cli,
    pairs: usize,
    messages: u64,
    rate: u64,
    size: usize,
    window: u64,
) -> anyhow::Result<Report> {
    let dialect = cli.dialect;
    let mut shared = Shared::new(cli, None);
    if window > 0 {
        // Sender i is watched by its own receiver.
        shared.flows = Some(Flows::new(window, (0..pairs).collect()));
    }
    let setup = Instant::now();
    let tag = run_tag();
    let receiver_name = |i: usize| short_name('b', &tag, i);
    // Redis has no users: each receiver listens on a channel of its own name.
    let receiver_channel = |i: usize| (dialect == Dialect::Redis).then(|| receiver_name(i));
    let senders = open_many(
        cli,
        &shared,
        0..pairs,
        true,
        |i| short_name('a', &tag, i),
        None,
        |_| Goal::Drain,
    )
    .await?;
    let mut receivers = Vec::new();
    for chunk_start in (0..pairs).step_by(cli.connect_concurrency.max(1)) {
        let chunk_end = (chunk_start + cli.connect_concurrency.max(1)).min(pairs);
        let opened = stream::iter(chunk_start..chunk_end)
            .map(|i| {
                let name = receiver_name(i);
                let channel = receiver_channel(i);
                let shared = &shared;
                async move {
                    // Past the senders' indexes, and on the server after its sender's
                    // when there are several (`i + 1` modulo their number).
                    let index = pairs * cli.addr.len() + i + 1;
                    let mut conn = connect_and_log_in(cli, index, Some(&name)).await?;
                    if let Some(channel) = channel {
                        conn.step(&dialect.join(&channel, false)).await?;
                    }
                    anyhow::Ok(spawn_reader(conn, shared, i, Goal::Fixed(messages)))
                }
            })
            .buffered(cli.connect_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        for client in opened {
            receivers.push(client.context("setting up receivers")?);
        }
    }

    let setup_seconds = setup.elapsed().as_secs_f64();
    let cpu_before = cpu::snapshot(&cli.server_pid);
    let start_ns = shared.start();
    let period = period(rate, pairs);
    let mut sending = Vec::new();
    for (i, sender) in senders.iter().enumerate() {
        let to = receiver_name(i);
        let sender_id = u32::try_from(i)?;
        sending.push(tokio::spawn(send(
            sender.writer.clone(),
            Until::Count(messages),
            period,
            shared.flows.clone().map(|flows| (flows, i)),
            shared.clock,
            move |seq, now, out| {
                let text = payload::encode(sender_id, seq, now, size);
                dialect.private_message(&to, &text, out);
            },
        )));
    }
    let (tally, timed_out) = collect(&mut receivers, |_| true, &senders).await;
    let cpu_after = cpu::snapshot(&cli.server_pid);
    for task in sending {
        task.abort();
    }
    let expected = pairs as u64 * messages;
    let mut report = Report::from_tally("pm", expected, start_ns, &tally);
    report.timed_out = timed_out;
    report.note_trouble(&shared.trouble);
    report.setup_seconds = setup_seconds;
    report.cpu = Some(cpu::usage(&cpu_before, &cpu_after, &cli.server_pid));
    Ok(report)
}

async fn idle(cli: &Cli, clients: usize, settle: Duration) -> anyhow::Result<Report> {
    let shared = Shared::new(cli, None);
    let rss_before = cpu::server_resident_kib(&cli.server_pid)?;
    let cpu_before = cpu::snapshot(&cli.server_pid);
    let started = Instant::now();
    let tag = run_tag();
    // Each connection keeps reading (and answering keep-alives), as a real client would.
    let conns = open_many(
        cli,
        &shared,
        0..clients,
        true,
        |i| short_name('i', &tag, i),
        None,
        |_| Goal::Drain,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu::snapshot(&cli.server_pid);
    let connected = conns.len() as u64;
    // Let the server settle (and finish what connecting started) before reading its memory.
    tokio::time::sleep(settle).await;
    let mut report = Report::from_tally("idle", clients as u64, 0, &Tally::with_window(None));
    report.delivered = connected;
    report.seconds = seconds;
    report.setup_seconds = seconds;
    report.connections = Some(connected);
    report.connections_per_sec = Some(connected as f64 / seconds.max(1e-9));
    report.cpu = Some(cpu::usage(&cpu_before, &cpu_after, &cli.server_pid));
    if let (Some(after), Some(before)) = (cpu::server_resident_kib(&cli.server_pid)?, rss_before) {
        report.rss_before_kib = Some(before);
        report.rss_after_kib = Some(after);
        report.rss_per_connection_bytes =
            Some(after.saturating_sub(before) as f64 * 1024.0 / connected.max(1) as f64);
    }
    // The connections are still open: the readers only end on a close, which would count.
    report.note_trouble(&shared.trouble);
    for conn in &conns {
        conn.reader.abort();
    }
    Ok(report)
}

/// Three characters of `dialect::NAME_DIGITS` that keep this run's names and rooms apart
/// from earlier runs' on the same server (rooms outlive their members for a while), short
/// enough for 9-character nicks.
fn run_tag() -> String {
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
    let mut tag = String::new();
    dialect::push_digits(&mut tag, seed as usize % 33usize.pow(3), 3);
    tag
}
