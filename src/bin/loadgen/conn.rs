//! One generated client connection.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::dialect::Step;

/// How long a set-up step may take before the run is declared failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

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
}

impl LineReader {
    pub fn new(read: OwnedReadHalf) -> Self {
        Self {
            read,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Calls `each` for every complete line available after one read; `Ok(false)` at EOF.
    pub async fn read_lines(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<bool> {
        if self.read.read_buf(&mut self.buf).await? == 0 {
            return Ok(false);
        }
        while let Some(end) = memchr::memchr(b'\n', &self.buf) {
            let line = &self.buf[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            each(line);
            self.buf.advance(end + 1);
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        Ok(true)
    }

    /// Reads until a line contains `needle`.
    pub async fn wait_for(&mut self, needle: &str) -> io::Result<()> {
        let needle = needle.as_bytes();
        let search = async {
            loop {
                let mut found = false;
                let open = self
                    .read_lines(|line| {
                        found |= memchr::memmem::find(line, needle).is_some();
                    })
                    .await?;
                if found {
                    return Ok(());
                }
                if !open {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
                }
            }
        };
        tokio::time::timeout(STEP_TIMEOUT, search)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "step timed out"))?
    }
}

/// A connection during set-up: both halves in hand.
pub struct Conn {
    pub reader: LineReader,
    pub write: OwnedWriteHalf,
}

impl Conn {
    pub async fn open(addr: SocketAddr, index: usize) -> io::Result<Self> {
        let (read, write) = connect(addr, index).await?.into_split();
        Ok(Self {
            reader: LineReader::new(read),
            write,
        })
    }

    pub async fn step(&mut self, step: &Step) -> io::Result<()> {
        self.write.write_all(step.send.as_bytes()).await?;
        self.reader.wait_for(step.until).await
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
