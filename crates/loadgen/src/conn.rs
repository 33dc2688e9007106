//! One generated client connection.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncWriteExt, Interest};
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
    setsockopt(&stream, sockopt::ReceiveTimestampns, &true)?;
    Ok(stream)
}

/// The reading side of a connection, with a buffer that yields whole lines, and the
/// kernel's stamp of when what it read arrived.
pub struct LineReader {
    read: OwnedReadHalf,
    /// `buf[..end]` is read but not yet handed out (the start of a line); `buf[end..]` is
    /// room for the next read. Zeroed only when it grows, never per read.
    buf: Vec<u8>,
    end: usize,
    want: usize,
    /// Room for the arrival stamp's control message, made once.
    control: Vec<u8>,
}

impl LineReader {
    pub fn new(read: OwnedReadHalf) -> Self {
        Self {
            read,
            buf: vec![0; BUF_START],
            end: 0,
            want: BUF_START,
            control: nix::cmsg_space!(TimeSpec),
        }
    }

    /// Calls `each` for every complete line available after one read (without its line
    /// ending), with the read's arrival time; `Ok(false)` at EOF.
    pub async fn read_lines(&mut self, mut each: impl FnMut(&[u8], Arrival)) -> io::Result<bool> {
        if self.buf.len() - self.end < self.want / 2 {
            self.buf.resize(self.end + self.want, 0);
        }
        let spare = self.buf.len() - self.end;
        let stream = self.read.as_ref();
        let fd = stream.as_raw_fd();
        let (got, arrival) = loop {
            stream.readable().await?;
            let into = &mut self.buf[self.end..];
            let control = &mut self.control;
            match stream.try_io(Interest::READABLE, || receive(fd, into, control)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                read => break read?,
            }
        };
        if got == 0 {
            return Ok(false);
        }
        if got == spare && self.want < BUF_MAX {
            // The read filled the buffer: more is probably waiting.
            self.want *= 2;
        }
        self.end += got;
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &self.buf[start..self.end]) {
            let line = &self.buf[start..start + end];
            each(line.strip_suffix(b"\r").unwrap_or(line), arrival);
            start += end + 1;
        }
        self.buf.copy_within(start..self.end, 0);
        self.end -= start;
        Ok(true)
    }
}

/// When the bytes of a read reached the receiving socket, as the kernel stamped them
/// (`SO_TIMESTAMPNS`, the real-time clock; of the last segment the read took). A latency
/// measured to it is the server's and the network's alone: it leaves out how long this
/// generator, one thread reading many sockets, took to get to the socket. The kernel turns
/// stamping on a moment after the first socket asks for it: the first lines on a quiet
/// machine may come without, long before any run's measured part begins.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// Nanoseconds since the Unix epoch; `None` if the kernel gave no stamp.
    pub unix_ns: Option<u64>,
}

/// One `recvmsg` into `into`, with the arrival stamp.
fn receive(fd: RawFd, into: &mut [u8], control: &mut [u8]) -> io::Result<(usize, Arrival)> {
    let mut iov = [IoSliceMut::new(into)];
    let message = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::MSG_DONTWAIT)?;
    let unix_ns = message.cmsgs()?.find_map(|cmsg| match cmsg {
        ControlMessageOwned::ScmTimestampns(at) => {
            u64::try_from(i128::from(at.tv_sec()) * 1_000_000_000 + i128::from(at.tv_nsec())).ok()
        }
        _ => None,
    });
    Ok((message.bytes, Arrival { unix_ns }))
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
                    .read_lines(|line, _| {
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

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use tokio::net::TcpListener;

    use super::*;

    fn unix_ns() -> u64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        u64::try_from(since.as_nanos()).unwrap()
    }

    /// A connected pair: the server's end, and the client's reader (with its writing half,
    /// which must stay open).
    async fn pair() -> (TcpStream, LineReader, OwnedWriteHalf) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (client, accepted) = tokio::join!(
            connect(listener.local_addr().unwrap(), 0),
            listener.accept()
        );
        let (read, write) = client.unwrap().into_split();
        (accepted.unwrap().0, LineReader::new(read), write)
    }

    #[tokio::test]
    async fn lines_come_whole() {
        let (mut server, mut reader, _write) = pair().await;
        let mut lines = Vec::new();
        server.write_all(b"one\ntwo\r\nthr").await.unwrap();
        let open = reader
            .read_lines(|line, _| lines.push(line.to_vec()))
            .await
            .unwrap();
        assert!(open);
        assert_eq!(lines, [b"one".to_vec(), b"two".to_vec()]);

        // The start of a line waits for its end.
        lines.clear();
        server.write_all(b"ee\n").await.unwrap();
        reader
            .read_lines(|line, _| lines.push(line.to_vec()))
            .await
            .unwrap();
        assert_eq!(lines, [b"three".to_vec()]);
        drop(server);
        assert!(!reader.read_lines(|_, _| {}).await.unwrap());
    }

    #[tokio::test]
    async fn a_line_is_stamped_when_it_arrived_not_when_it_was_read() {
        let (mut server, mut reader, _write) = pair().await;
        // The kernel turns stamping on in deferred work once a first socket asks for it, so
        // on a quiet machine the first lines may come unstamped.
        for _ in 0..200 {
            let sent = unix_ns();
            server.write_all(b"line\n").await.unwrap();
            reader.read.as_ref().readable().await.unwrap();
            let read = unix_ns();
            let mut stamp = None;
            reader
                .read_lines(|_, arrival| stamp = arrival.unix_ns)
                .await
                .unwrap();
            if let Some(arrived) = stamp {
                assert!(
                    sent <= arrived && arrived <= read,
                    "{sent} {arrived} {read}"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no line came with the kernel's stamp of its arrival");
    }
}
