//! One generated client connection.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::dialect::{Dialect, Step};

/// How long a set-up step may take before the run is declared failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// A connection's read buffer starts small (thousands of idle connections must stay cheap)
/// and grows while reads keep filling it.
const BUF_START: usize = 2 * 1024;
const BUF_MAX: usize = 256 * 1024;

/// Connects from a source address that rotates over 127.0.0.1-250, so that many connections
/// (and their TIME_WAIT leftovers) do not exhaust one address's ephemeral ports.
pub async fn connect(addr: SocketAddr, index: usize) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if addr.ip().is_loopback() {
        let last = u8::try_from(1 + index % 250).unwrap_or(1);
        socket.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The reading side of a connection, with a buffer that yields whole lines.
pub struct LineReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    want: usize,
}

impl LineReader {
    pub fn new(read: OwnedReadHalf) -> Self {
        Self {
            read,
            buf: BytesMut::with_capacity(BUF_START),
            want: BUF_START,
        }
    }

    /// Calls `each` for every complete line available after one read (without its line
    /// ending); `Ok(false)` at EOF.
    pub async fn read_lines(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < self.want / 2 {
            self.buf.reserve(self.want);
        }
        let spare = self.buf.capacity() - self.buf.len();
        let got = self.read.read_buf(&mut self.buf).await?;
        if got == 0 {
            return Ok(false);
        }
        if got == spare && self.want < BUF_MAX {
            // The read filled the buffer: more is probably waiting.
            self.want *= 2;
        }
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &self.buf[start..]) {
            let line = &self.buf[start..start + end];
            each(line.strip_suffix(b"\r").unwrap_or(line));
            start += end + 1;
        }
        self.buf.advance(start);
        Ok(true)
    }
}

/// A connection during set-up: both halves in hand.
pub struct Conn {
    pub reader: LineReader,
    pub write: OwnedWriteHalf,
    pub dialect: Dialect,
}

impl Conn {
    pub async fn open(addr: SocketAddr, index: usize, dialect: Dialect) -> io::Result<Self> {
        let (read, write) = connect(addr, index).await?.into_split();
        Ok(Self {
            reader: LineReader::new(read),
            write,
            dialect,
        })
    }

    /// Sends the step's lines and reads until its reply, answering keep-alive probes on the
    /// way. An error reply, end of file or no reply in time fails the step, with the
    /// server's line in the error.
    pub async fn step(&mut self, step: &Step) -> io::Result<()> {
        self.write.write_all(step.send.as_bytes()).await?;
        let dialect = self.dialect;
        let search = async {
            loop {
                let mut found = false;
                let mut failure = None;
                let mut pongs = Vec::new();
                let open = self
                    .reader
                    .read_lines(|line| {
                        if step.ends_at(line) {
                            found = true;
                        } else if let Some(pong) = dialect.pong(line) {
                            pongs.push(pong);
                        } else if failure.is_none() && dialect.is_error(line) {
                            failure = Some(String::from_utf8_lossy(line).into_owned());
                        }
                    })
                    .await?;
                for pong in pongs {
                    self.write.write_all(&pong).await?;
                }
                if found {
                    return Ok(());
                }
                if let Some(line) = failure {
                    let sent = step.send.trim_end();
                    return Err(io::Error::other(format!("{sent:?} got {line:?}")));
                }
                if !open {
                    let sent = step.send.trim_end();
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{sent:?}: the server closed the connection"),
                    ));
                }
            }
        };
        tokio::time::timeout(STEP_TIMEOUT, search)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "set-up step timed out"))?
    }

    /// Hands the writing half to a task fed by a bounded channel, so that a burst sender
    /// is held back by the socket rather than queueing without limit.
    pub fn into_parts(self) -> (LineReader, mpsc::Sender<Vec<u8>>) {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let mut write = self.write;
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        (self.reader, tx)
    }
}
