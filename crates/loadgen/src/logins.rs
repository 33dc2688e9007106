//! The login storm: accounts register, then log in, each over a fresh connection, many at
//! once, while a paced fan-out goes on in a room. Measures registrations and logins per
//! second, and the chat latency of the messages sent while the storm lasted, next to that
//! of the messages sent before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, stream};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;

use crate::conn::Conn;
use crate::dialect::{Step, short_name};
use crate::stats::{Percentiles, Report, StormReport, Window};
use crate::{Cli, Goal, Shared, Until, collect, cpu, payload, period, room_members, run_tag};

pub struct Storm {
    pub accounts: usize,
    pub concurrency: usize,
    pub members: usize,
    pub senders: usize,
    pub rate: u64,
    pub size: usize,
    pub warmup: Duration,
}

pub async fn run(cli: &Cli, storm: &Storm) -> anyhow::Result<Report> {
    let dialect = cli.dialect;
    let window = Window::new();
    let shared = Shared::new(cli, Some(window.clone()));
    let setup = Instant::now();
    let tag = run_tag();
    let room: Arc<str> = format!("b{tag}").into();
    let sent: Arc<Vec<AtomicU64>> =
        Arc::new((0..storm.senders).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = room_members(cli, &shared, storm.members, &tag, &room, |i| {
        Goal::UntilDone {
            sent: sent.clone(),
            done: done.clone(),
            own: (i < storm.senders).then_some(i),
        }
    })
    .await?;
    let setup_seconds = setup.elapsed().as_secs_f64();

    let cpu_before = cpu::snapshot(&cli.server_pid);
    let start_ns = shared.start();
    let period = period(storm.rate, storm.senders);
    let mut sending = Vec::new();
    for (index, client) in clients[..storm.senders].iter().enumerate() {
        let room = room.clone();
        let sender_id = u32::try_from(index)?;
        let size = storm.size;
        sending.push(tokio::spawn(crate::send(
            client.writer.clone(),
            Until::Stopped {
                stop: stop.clone(),
                sent: sent.clone(),
                index,
            },
            period,
            None,
            shared.clock,
            move |seq, now, out| {
                let text = payload::encode(sender_id, seq, now, size);
                dialect.room_message(&room, &text, out);
            },
        )));
    }
    tokio::time::sleep(storm.warmup).await;

    window.open(shared.now_ns());
    let storm_started = Instant::now();
    let first_source = storm.members;
    let register = phase(cli, storm, &tag, first_source, Verb::Register).await;
    let login = phase(cli, storm, &tag, first_source, Verb::Login).await;
    window.close(shared.now_ns());
    let storm_seconds = storm_started.elapsed().as_secs_f64();

    stop.store(true, Ordering::Release);
    for task in sending {
        let _ = task.await;
    }
    done.store(true, Ordering::Release);
    let (tally, timed_out) = collect(&mut clients, |_| true, &[]).await;
    let cpu_after = cpu::snapshot(&cli.server_pid);

    let total_sent: u64 = sent.iter().map(|count| count.load(Ordering::Acquire)).sum();
    let expected: u64 = (0..storm.members)
        .map(|i| {
            let own = if i < storm.senders {
                sent[i].load(Ordering::Acquire)
            } else {
                0
            };
            total_sent - own
        })
        .sum();
    let mut report = Report::from_tally("logins", expected, start_ns, &tally);
    report.timed_out = timed_out;
    report.note_trouble(&shared.trouble);
    report.setup_seconds = setup_seconds;
    report.cpu = Some(cpu::usage(&cpu_before, &cpu_after, &cli.server_pid));
    report.storm = Some(StormReport {
        accounts: storm.accounts as u64,
        concurrency: storm.concurrency,
        registered: register.succeeded,
        registers_per_sec: register.succeeded as f64 / register.seconds.max(1e-9),
        register_latency: Percentiles::of(&register.latency_ns),
        logged_in: login.succeeded,
        logins_per_sec: login.succeeded as f64 / login.seconds.max(1e-9),
        login_latency: Percentiles::of(&login.latency_ns),
        failures: register.failures + login.failures,
        first_failure: register.first_failure.or(login.first_failure),
        storm_seconds,
        chat_before_storm: Percentiles::of_samples(&tally.before_ns),
    });
    Ok(report)
}

#[derive(Clone, Copy)]
enum Verb {
    Register,
    Login,
}

struct PhaseResult {
    succeeded: u64,
    failures: u64,
    first_failure: Option<String>,
    seconds: f64,
    latency_ns: Histogram<u64>,
}

/// Every account registers (or logs in), `concurrency` at once, each over a fresh connection
/// that quits once the answer came.
async fn phase(
    cli: &Cli,
    storm: &Storm,
    tag: &str,
    first_source: usize,
    verb: Verb,
) -> PhaseResult {
    let started = Instant::now();
    let results: Vec<(Duration, anyhow::Result<()>)> = stream::iter(0..storm.accounts)
        .map(|i| {
            let name = short_name('u', tag, i);
            async move {
                let began = Instant::now();
                let result = one(cli, first_source + i, &name, verb).await;
                (began.elapsed(), result)
            }
        })
        .buffer_unordered(storm.concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut latency_ns = crate::stats::histogram();
    let (mut succeeded, mut failures, mut first_failure) = (0, 0, None);
    for (took, result) in results {
        match result {
            Ok(()) => {
                succeeded += 1;
                latency_ns.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
            Err(error) => {
                failures += 1;
                first_failure.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    PhaseResult {
        succeeded,
        failures,
        first_failure,
        seconds,
        latency_ns,
    }
}

/// One registration or login, timed from the connect to the server's `OK`; then `QUIT`,
/// waiting (briefly) for the server to close, so that the next phase finds the account
/// offline.
async fn one(cli: &Cli, source: usize, name: &str, verb: Verb) -> anyhow::Result<()> {
    let password = format!("bench-{name}");
    let step = match verb {
        Verb::Register => Step {
            send: format!("REGISTER {name} {password}\n"),
            until: "OK REGISTER",
            naming: None,
        },
        Verb::Login => Step {
            send: format!("LOGIN {name} {password}\n"),
            until: "OK LOGIN",
            naming: None,
        },
    };
    let mut conn = Conn::open(cli.addr_of(source), source, cli.dialect)
        .await
        .context("connecting")?;
    conn.step(&step).await?;
    conn.write.write_all(cli.dialect.quit()).await?;
    let closed = async { while let Ok(true) = conn.reader.read_lines(|_, _| {}).await {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
    Ok(())
}
