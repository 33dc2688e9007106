//! The TCP connection to the server: connecting, the greeting, logging in, and the link task
//! that keeps a session alive, reconnecting with backoff and logging in again when it drops.

use std::fmt;
use std::io;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use linechat_protocol::{Command, ErrorCode, Name, Notice, Password, Reply};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};

use crate::format;

/// How long connecting, the greeting and a login answer may take.
const PATIENCE: Duration = Duration::from_secs(15);

/// Longest server line read. The server's lines are shorter than its own line limit plus a
/// few names, so this only guards against a peer that is not a linechat server.
const MAX_LINE: usize = 1 << 20;

/// Who to log in as.
#[derive(Clone)]
pub struct Credentials {
    pub name: Name,
    /// `None` for a guest (`NICK`).
    pub password: Option<Password>,
}

impl Credentials {
    pub fn login(&self) -> Command {
        match &self.password {
            Some(password) => Command::Login {
                name: self.name.clone(),
                password: password.clone(),
            },
            None => Command::Nick {
                name: self.name.clone(),
            },
        }
    }

    pub fn register(&self) -> Option<Command> {
        self.password.as_ref().map(|password| Command::Register {
            name: self.name.clone(),
            password: password.clone(),
        })
    }
}

/// Why a login did not succeed.
#[derive(Debug)]
pub enum LoginError {
    /// The server answered `ERR`.
    Refused { code: ErrorCode, message: String },
    /// The connection failed or closed.
    Io(io::Error),
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginError::Refused { code, message } => write!(f, "{code}: {message}"),
            LoginError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl From<io::Error> for LoginError {
    fn from(error: io::Error) -> Self {
        LoginError::Io(error)
    }
}

/// A line from the server: parsed, or kept raw when it is not a line this client knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Reply(Reply),
    Unknown(String),
}

impl Line {
    fn read(line: String) -> Line {
        match Reply::parse(&line) {
            Ok(reply) => Line::Reply(reply),
            Err(_) => Line::Unknown(line),
        }
    }
}

/// One open connection that has read the greeting.
pub struct Connection {
    reader: FramedRead<OwnedReadHalf, LinesCodec>,
    writer: FramedWrite<OwnedWriteHalf, LinesCodec>,
}

fn codec_error(error: LinesCodecError) -> io::Error {
    match error {
        LinesCodecError::Io(error) => error,
        LinesCodecError::MaxLineLengthExceeded => io::Error::new(
            io::ErrorKind::InvalidData,
            "the server sent a line too long",
        ),
    }
}

async fn patiently<T>(what: &str, future: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no {what} within {} s", PATIENCE.as_secs()),
        )),
    }
}

impl Connection {
    /// Connects to `addr` and reads the greeting.
    pub async fn open(addr: &str) -> io::Result<Connection> {
        let stream = patiently("connection", TcpStream::connect(addr)).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut connection = Connection {
            reader: FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE)),
            writer: FramedWrite::new(write, LinesCodec::new()),
        };
        let hello = patiently("greeting", connection.next_line()).await?;
        match hello {
            Some(Line::Reply(Reply::Hello { .. })) => Ok(connection),
            // TOO_MANY_CONNECTIONS comes instead of the greeting.
            Some(Line::Reply(Reply::Err { code, message })) => Err(io::Error::other(format!(
                "the server refused the connection: {code} {message}"
            ))),
            Some(Line::Reply(reply)) => Err(not_linechat(&reply.to_string())),
            Some(Line::Unknown(line)) => Err(not_linechat(&line)),
            None => Err(closed()),
        }
    }

    pub async fn send(&mut self, command: &Command) -> io::Result<()> {
        self.writer
            .send(command.to_string())
            .await
            .map_err(codec_error)
    }

    /// The next line, or `None` when the server closed the connection.
    pub async fn next_line(&mut self) -> io::Result<Option<Line>> {
        match self.reader.next().await {
            Some(Ok(line)) => Ok(Some(Line::read(line))),
            Some(Err(error)) => Err(codec_error(error)),
            None => Ok(None),
        }
    }

    /// Sends `REGISTER`, `LOGIN` or `NICK` and reads up to its final line. The lines that
    /// come before it (the rooms and private messages a `LOGIN` restores) are pushed on
    /// `before`. Returns the name as the server spells it.
    pub async fn login(
        &mut self,
        command: &Command,
        before: &mut Vec<Line>,
    ) -> Result<Name, LoginError> {
        self.send(command).await?;
        loop {
            let line = patiently("answer to the login", self.next_line()).await?;
            match line {
                None => return Err(closed().into()),
                Some(Line::Reply(Reply::Ok { detail, .. })) => {
                    let spelled = detail.as_deref().and_then(|name| Name::parse(name).ok());
                    return Ok(spelled.unwrap_or_else(|| login_name(command)));
                }
                Some(Line::Reply(Reply::Err { code, message })) => {
                    return Err(LoginError::Refused { code, message });
                }
                Some(line) => before.push(line),
            }
        }
    }
}

fn login_name(command: &Command) -> Name {
    match command {
        Command::Login { name, .. } | Command::Register { name, .. } | Command::Nick { name } => {
            name.clone()
        }
        other => unreachable!("{other:?} is not a login"),
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection",
    )
}

fn not_linechat(line: &str) -> io::Error {
    let line: String = line.chars().take(80).collect();
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("not a linechat server: it said {line:?}"),
    )
}

/// What the link task tells the client.
#[derive(Debug)]
pub enum LinkEvent {
    /// A line from the server.
    Line(Line),
    /// Logged in (again): commands go to `outbox` from now on, until `Lost`.
    Connected {
        name: Name,
        outbox: mpsc::UnboundedSender<Command>,
        again: bool,
    },
    /// The connection dropped; the link is reconnecting.
    Lost { reason: String },
    /// A reconnection attempt failed; the next one is in `delay`.
    Retrying {
        attempt: u32,
        delay: Duration,
        error: String,
    },
    /// The link stopped for good: after `QUIT`, or when logging in again is refused or the
    /// attempts run out (`error`).
    Ended { error: Option<String> },
}

/// How the link retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Attempts after a loss before giving up; `None` tries forever.
    pub attempts: Option<u32>,
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// Starts the task that owns the session: it forwards server lines, writes commands, and on
/// a lost connection reconnects (with `backoff`) and logs in again with `credentials`.
/// `before` holds the lines read during the first login; they are delivered first.
pub fn spawn_link(
    addr: String,
    credentials: Credentials,
    connection: Connection,
    name: Name,
    before: Vec<Line>,
    backoff: Backoff,
) -> mpsc::UnboundedReceiver<LinkEvent> {
    let (events, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let link = Link {
            addr,
            credentials,
            backoff,
            events,
        };
        link.run(connection, name, before).await;
    });
    receiver
}

struct Link {
    addr: String,
    credentials: Credentials,
    backoff: Backoff,
    events: mpsc::UnboundedSender<LinkEvent>,
}

/// How one connection ended.
enum End {
    Quit,
    Lost(String),
    /// The client dropped its receiver: nobody is listening.
    Abandoned,
}

impl Link {
    fn emit(&self, event: LinkEvent) -> bool {
        self.events.send(event).is_ok()
    }

    async fn run(self, mut connection: Connection, mut name: Name, mut before: Vec<Line>) {
        let mut again = false;
        loop {
            for line in before.drain(..) {
                self.emit(LinkEvent::Line(line));
            }
            let (outbox, commands) = mpsc::unbounded_channel();
            if !self.emit(LinkEvent::Connected {
                name: name.clone(),
                outbox,
                again,
            }) {
                return;
            }
            match self.serve(&mut connection, commands).await {
                End::Quit => {
                    self.emit(LinkEvent::Ended { error: None });
                    return;
                }
                End::Abandoned => return,
                End::Lost(reason) => {
                    if !self.emit(LinkEvent::Lost { reason }) {
                        return;
                    }
                }
            }
            drop(connection);
            match self.reconnect(&mut before).await {
                Ok((new_connection, new_name)) => {
                    connection = new_connection;
                    name = new_name;
                    again = true;
                }
                Err(error) => {
                    self.emit(LinkEvent::Ended { error: Some(error) });
                    return;
                }
            }
        }
    }

    /// Forwards lines both ways until the connection ends.
    async fn serve(
        &self,
        connection: &mut Connection,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> End {
        let mut quitting = false;
        let mut shutting_down = false;
        loop {
            tokio::select! {
                line = connection.next_line() => match line {
                    Ok(Some(Line::Reply(Reply::Ping(token)))) => {
                        // The server checks that we are still there; PONG gets no reply.
                        let pong = Command::Pong { token: Some(token) };
                        if let Err(error) = connection.send(&pong).await {
                            return End::Lost(error.to_string());
                        }
                    }
                    Ok(Some(line)) => {
                        if matches!(line, Line::Reply(Reply::Notice(Notice::Shutdown))) {
                            shutting_down = true;
                        }
                        if !self.emit(LinkEvent::Line(line)) {
                            return End::Abandoned;
                        }
                    }
                    Ok(None) if quitting => return End::Quit,
                    Ok(None) if shutting_down => {
                        return End::Lost("the server is shutting down".into());
                    }
                    Ok(None) => return End::Lost("the server closed the connection".into()),
                    Err(error) => return End::Lost(error.to_string()),
                },
                command = commands.recv(), if !quitting => match command {
                    Some(command) => {
                        quitting |= matches!(command, Command::Quit { .. });
                        if let Err(error) = connection.send(&command).await {
                            return End::Lost(error.to_string());
                        }
                    }
                    // The client dropped this connection's outbox: it is done with it.
                    None => return End::Abandoned,
                },
            }
        }
    }

    /// Connects and logs in again, with backoff. `before` receives the lines of the login.
    async fn reconnect(&self, before: &mut Vec<Line>) -> Result<(Connection, Name), String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let delay = self.backoff.delay(attempt);
            tokio::time::sleep(delay).await;
            if self.events.is_closed() {
                return Err("the client stopped".into());
            }
            let error = match self.login_once(before).await {
                Ok(done) => return Ok(done),
                Err(LoginError::Refused { code, message }) => {
                    let why = format::err(code, &message, Some(&self.credentials.login()));
                    // Trying again would get the same answer.
                    if matches!(code, ErrorCode::BadPassword | ErrorCode::GuestsDisabled) {
                        return Err(format!("logging in again was refused: {why}"));
                    }
                    why
                }
                Err(error) => error.to_string(),
            };
            before.clear();
            if self.backoff.attempts.is_some_and(|most| attempt >= most) {
                return Err(format!(
                    "gave up reconnecting to {} after {attempt} attempts: {error}",
                    self.addr
                ));
            }
            let next = self.backoff.delay(attempt + 1);
            self.emit(LinkEvent::Retrying {
                attempt,
                delay: next,
                error,
            });
        }
    }

    async fn login_once(&self, before: &mut Vec<Line>) -> Result<(Connection, Name), LoginError> {
        let mut connection = Connection::open(&self.addr).await?;
        let name = connection.login(&self.credentials.login(), before).await?;
        Ok((connection, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let backoff = Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(5),
            attempts: None,
        };
        let delays: Vec<_> = (1..=6).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff.delay(1000), Duration::from_secs(5));
    }

    #[test]
    fn credentials_choose_the_login_command() {
        let name = Name::parse("alice").unwrap();
        let guest = Credentials {
            name: name.clone(),
            password: None,
        };
        assert_eq!(guest.login().to_string(), "NICK alice");
        assert!(guest.register().is_none());
        let user = Credentials {
            name,
            password: Some(Password::new("pw 1")),
        };
        assert_eq!(user.login().to_string(), "LOGIN alice pw 1");
        assert_eq!(user.register().unwrap().to_string(), "REGISTER alice pw 1");
    }
}
