//! linechat's load generator: many client connections on loopback, the same workload in
//! linechat's protocol, plain IRC or Redis pub/sub, with deliveries per second and latency
//! percentiles from an HDR histogram (the send time travels in each message).
//!
//! `cargo run --release --bin loadgen -- --help` lists the scenarios and their flags.

mod conn;
mod dialect;
mod payload;
mod stats;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::{StreamExt, stream};
use tokio::sync::mpsc;

use conn::{Conn, LineReader};
use dialect::Dialect;
use stats::{Report, Tally};

#[derive(Debug, Parser)]
#[command(about = "Load generator for linechat, IRC servers and Redis pub/sub")]
struct Cli {
    /// Server to load.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Protocol the server speaks.
    #[arg(long, value_enum, default_value = "linechat")]
    dialect: Dialect,
    /// Name of the target in the report (default: the dialect).
    #[arg(long)]
    target: Option<String>,
    /// Append the report to this file as one JSON line.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// A receiver gives up after this long without a message (counted from its first).
    #[arg(long, default_value_t = 10)]
    idle_timeout_secs: u64,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Subcommand)]
enum Scenario {
    /// Members in one room; some of them send, everyone receives.
    Fanout {
        #[arg(long, default_value_t = 100)]
        members: usize,
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Messages per sender.
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        /// Messages per second for all senders together; 0 sends as fast as possible.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Message size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// Pairs of users talking in private messages at once.
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
    },
    /// Logged-in connections that stay quiet, and the server memory they take.
    Idle {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// The server's process id, to read its memory from /proc/<pid>/status.
        #[arg(long)]
        server_pid: Option<u32>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One worker thread per core the generator may use: pin it with taskset.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&cli))?;
    report.print();
    if let Some(path) = &cli.json {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{}", serde_json::to_string(&report)?)?;
    }
    Ok(())
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let target = cli
        .target
        .clone()
        .unwrap_or_else(|| format!("{:?}", cli.dialect).to_lowercase());
    match cli.scenario.clone() {
        Scenario::Fanout {
            members,
            senders,
            messages,
            rate,
            size,
        } => {
            if senders == 0 || members == 0 {
                bail!("fanout needs at least one member and one sender");
            }
            if cli.dialect.senders_are_members() && senders > members {
                bail!("senders are members here: --senders must not exceed --members");
            }
            let parameters = format!(
                "members={members} senders={senders} messages={messages} rate={rate} size={size}"
            );
            let mut report = fanout(cli, members, senders, messages, rate, size).await?;
            report.target = target;
            report.parameters = parameters;
            Ok(report)
        }
        Scenario::Pm {
            pairs,
            messages,
            rate,
            size,
        } => {
            let parameters = format!("pairs={pairs} messages={messages} rate={rate} size={size}");
            let mut report = private_messages(cli, pairs, messages, rate, size).await?;
            report.target = target;
            report.parameters = parameters;
            Ok(report)
        }
        Scenario::Idle {
            clients,
            server_pid,
        } => {
            let mut report = idle(cli, clients, server_pid).await?;
            report.target = target;
            report.parameters = format!("clients={clients}");
            Ok(report)
        }
    }
}

/// Opens connections `indices` concurrently, each logged in as `name(i)` and, if `room` is
/// given, in that room. Results come back in index order.
async fn open_many(
    cli: &Cli,
    indices: std::ops::Range<usize>,
    login: bool,
    name: impl Fn(usize) -> String,
    room: Option<&str>,
) -> anyhow::Result<Vec<Conn>> {
    let dialect = cli.dialect;
    let mut opened: Vec<(usize, Conn)> = stream::iter(indices)
        .map(|index| {
            let name = name(index);
            async move {
                let mut conn = Conn::open(cli.addr, index).await?;
                if login && let Some(step) = dialect.login(&name) {
                    conn.step(&step).await?;
                }
                if let Some(room) = room {
                    conn.step(&dialect.join(room, false)).await?;
                }
                anyhow::Ok((index, conn))
            }
        })
        .buffer_unordered(cli.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .context("setting up connections")?;
    opened.sort_by_key(|(index, _)| *index);
    Ok(opened.into_iter().map(|(_, conn)| conn).collect())
}

/// Receives until `expected` payloads arrived or the line went quiet; answers keep-alives.
async fn receive(
    mut reader: LineReader,
    writer: mpsc::Sender<Vec<u8>>,
    dialect: Dialect,
    expected: u64,
    base: Instant,
    idle: Duration,
) -> Tally {
    let mut tally = Tally::default();
    while tally.received < expected {
        // The timeout starts at the first message: set-up of a big run can take a while.
        let wait = if tally.received == 0 {
            Duration::from_secs(300)
        } else {
            idle
        };
        let mut pongs = Vec::new();
        let read = reader.read_lines(|line| {
            if let Some(payload) = payload::decode(line) {
                tally.record(&payload, payload::now_ns(base));
            } else if let Some(pong) = dialect.pong(line) {
                pongs.push(pong);
            }
        });
        match tokio::time::timeout(wait, read).await {
            Ok(Ok(true)) => {}
            _ => break,
        }
        for pong in pongs {
            let _ = writer.send(pong).await;
        }
    }
    tally
}

/// What one sender sends: `messages` lines made by `line`, at `period` or as fast as possible.
async fn send(
    writer: mpsc::Sender<Vec<u8>>,
    messages: u64,
    period: Option<Duration>,
    base: Instant,
    line: impl Fn(u64, u64, &mut Vec<u8>),
) {
    let mut batch = Vec::with_capacity(32 * 1024);
    let mut ticks = period.map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        interval
    });
    for seq in 0..messages {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        line(seq, payload::now_ns(base), &mut batch);
        if ticks.is_some() || batch.len() >= 16 * 1024 {
            if writer.send(std::mem::take(&mut batch)).await.is_err() {
                return;
            }
            batch.reserve(32 * 1024);
        }
    }
    if !batch.is_empty() {
        let _ = writer.send(batch).await;
    }
    // Keep the connection open until the receivers are done: the caller drops the writer.
    writer.closed().await;
}

fn period(rate: u64, senders: usize) -> Option<Duration> {
    (rate > 0).then(|| Duration::from_secs_f64(senders as f64 / rate as f64))
}

async fn fanout(
    cli: &Cli,
    members: usize,
    senders: usize,
    messages: u64,
    rate: u64,
    size: usize,
) -> anyhow::Result<Report> {
    let dialect = cli.dialect;
    let tag = run_tag();
    let room: std::sync::Arc<str> = format!("bench{tag}").into();
    let member_name = |i: usize| format!("m{i}x{tag}");
    // The first member creates the room where the protocol asks for that.
    let mut first = Conn::open(cli.addr, 0).await?;
    if let Some(step) = dialect.login(&member_name(0)) {
        first.step(&step).await?;
    }
    first.step(&dialect.join(&room, true)).await?;
    let mut conns = vec![first];
    conns.extend(open_many(cli, 1..members, true, member_name, Some(&room)).await?);
    let extra_senders = if dialect.senders_are_members() {
        Vec::new()
    } else {
        open_many(
            cli,
            members..members + senders,
            false,
            |i| format!("s{i}"),
            None,
        )
        .await?
    };

    let base = Instant::now();
    let idle = Duration::from_secs(cli.idle_timeout_secs);
    let mut receivers = Vec::new();
    let mut writers = Vec::new();
    let mut expected_total = 0;
    for (index, conn) in conns.into_iter().enumerate() {
        let (reader, writer) = conn.into_parts();
        let sends = dialect.senders_are_members() && index < senders;
        let expected = if sends { senders - 1 } else { senders } as u64 * messages;
        expected_total += expected;
        receivers.push(tokio::spawn(receive(
            reader,
            writer.clone(),
            dialect,
            expected,
            base,
            idle,
        )));
        if sends {
            writers.push(writer);
        }
    }
    for conn in extra_senders {
        let (reader, writer) = conn.into_parts();
        tokio::spawn(receive(reader, writer.clone(), dialect, 0, base, idle));
        writers.push(writer);
    }

    let start_ns = payload::now_ns(base);
    let period = period(rate, senders);
    let mut sending = Vec::new();
    for (sender, writer) in writers.into_iter().enumerate() {
        let sender = u32::try_from(sender)?;
        let room = room.clone();
        sending.push(tokio::spawn(send(
            writer,
            messages,
            period,
            base,
            move |seq, now, out| {
                let text = payload::encode(sender, seq, now, size);
                dialect.room_message(&room, &text, out);
            },
        )));
    }
    let mut tally = Tally::default();
    for receiver in receivers {
        tally.merge(receiver.await?);
    }
    for task in sending {
        task.abort();
    }
    Ok(Report::from_tally(
        "",
        "fanout",
        String::new(),
        expected_total,
        start_ns,
        &tally,
    ))
}

async fn private_messages(
    cli: &Cli,
    pairs: usize,
    messages: u64,
    rate: u64,
    size: usize,
) -> anyhow::Result<Report> {
    let dialect = cli.dialect;
    let tag = run_tag();
    let receiver_name = |i: usize| format!("b{i}x{tag}");
    let senders = open_many(cli, 0..pairs, true, |i| format!("a{i}x{tag}"), None).await?;
    let mut receivers = Vec::new();
    for (i, mut conn) in open_many(cli, pairs..2 * pairs, true, receiver_name, None)
        .await?
        .into_iter()
        .enumerate()
    {
        if dialect == Dialect::Redis {
            // Redis has no users: each receiver listens on a channel of its own name.
            conn.step(&dialect.join(&receiver_name(pairs + i), false))
                .await?;
        }
        receivers.push(conn);
    }

    let base = Instant::now();
    let idle = Duration::from_secs(cli.idle_timeout_secs);
    let receiving: Vec<_> = receivers
        .into_iter()
        .map(|conn| {
            let (reader, writer) = conn.into_parts();
            tokio::spawn(receive(reader, writer, dialect, messages, base, idle))
        })
        .collect();
    let start_ns = payload::now_ns(base);
    let period = period(rate, pairs);
    let mut sending = Vec::new();
    for (i, conn) in senders.into_iter().enumerate() {
        let (reader, writer) = conn.into_parts();
        tokio::spawn(receive(reader, writer.clone(), dialect, 0, base, idle));
        let to = receiver_name(pairs + i);
        let sender = u32::try_from(i)?;
        sending.push(tokio::spawn(send(
            writer,
            messages,
            period,
            base,
            move |seq, now, out| {
                let text = payload::encode(sender, seq, now, size);
                dialect.private_message(&to, &text, out);
            },
        )));
    }
    let mut tally = Tally::default();
    for receiver in receiving {
        tally.merge(receiver.await?);
    }
    for task in sending {
        task.abort();
    }
    let expected = pairs as u64 * messages;
    Ok(Report::from_tally(
        "",
        "pm",
        String::new(),
        expected,
        start_ns,
        &tally,
    ))
}

async fn idle(cli: &Cli, clients: usize, server_pid: Option<u32>) -> anyhow::Result<Report> {
    let rss_before = server_pid.map(resident_kib).transpose()?;
    let started = Instant::now();
    let tag = run_tag();
    let conns = open_many(cli, 0..clients, true, |i| format!("i{i}x{tag}"), None).await?;
    let connected = conns.len() as u64;
    let seconds = started.elapsed().as_secs_f64();
    // Read (and drop) what arrives, as a real client would, then let the server settle.
    let mut drains = Vec::new();
    for conn in conns {
        let (mut reader, writer) = conn.into_parts();
        drains.push(tokio::spawn(async move {
            while let Ok(true) = reader.read_lines(|_| {}).await {}
            drop(writer);
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut report = Report::from_tally(
        "",
        "idle",
        String::new(),
        clients as u64,
        0,
        &Tally::default(),
    );
    report.delivered = connected;
    report.seconds = seconds;
    if let (Some(pid), Some(before)) = (server_pid, rss_before) {
        let after = resident_kib(pid)?;
        let per_connection = (after.saturating_sub(before)) as f64 * 1024.0 / connected as f64;
        report.extra = Some(format!(
            "server RSS {before} KiB -> {after} KiB, {per_connection:.0} bytes per connection"
        ));
    }
    for drain in drains {
        drain.abort();
    }
    Ok(report)
}

/// A short tag that keeps this run's names and rooms apart from earlier runs' on the same
/// server (rooms outlive their members).
fn run_tag() -> String {
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
    format!("{:x}", seed & 0xff_ffff)
}

/// Resident memory of a process, from /proc/<pid>/status.
fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the status of process {pid}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .context("no VmRSS line")
}
