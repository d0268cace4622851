//! Length-prefixed frames over the worker's pipes, with a deadline on every
//! read and write: a 4-byte big-endian length, then that many bytes (a UTF-8
//! JSON array). Both pipe ends are non-blocking and waited for with `poll`, so a
//! worker that stops reading or writing (a hang, a full pipe) costs at most the
//! time left before the deadline, and no thread of its own.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

/// The largest frame either side accepts (file contents travel in frames).
pub const MAX_FRAME: usize = 256 << 20;

/// Why a frame could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// The other end is gone (the worker exited or was killed).
    #[error("the worker closed its pipe")]
    Closed,
    /// The deadline passed first.
    #[error("deadline passed")]
    TimedOut,
    /// A frame over [`MAX_FRAME`].
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLarge(usize),
    /// Any other I/O error.
    #[error("pipe: {0}")]
    Io(#[from] std::io::Error),
}

/// Makes a pipe end non-blocking (frames are then moved with [`write_frame`] and
/// [`FrameReader::read_frame`]).
pub fn set_nonblocking(fd: impl AsFd) -> std::io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true).map_err(std::io::Error::from)
}

/// Waits until `fd` is ready for `flags`, or the deadline.
fn wait(fd: &impl AsFd, flags: PollFlags, deadline: Instant) -> Result<(), PipeError> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(PipeError::TimedOut);
        }
        let left = deadline - now;
        let timeout = Timespec {
            tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: left.subsec_nanos().into(),
        };
        let mut fds = [PollFd::new(fd, flags)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(PipeError::Io(e.into())),
        }
    }
}

/// Writes one frame with `payload` before `deadline`.
pub fn write_frame<W: Write + AsFd>(
    w: &mut W,
    payload: &[u8],
    deadline: Instant,
) -> Result<(), PipeError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|n| (*n as usize) <= MAX_FRAME)
        .ok_or(PipeError::TooLarge(payload.len()))?;
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    let mut done = 0;
    while done < frame.len() {
        match w.write(&frame[done..]) {
            Ok(0) => return Err(PipeError::Closed),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => wait(w, PollFlags::OUT, deadline)?,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Err(PipeError::Closed),
            Err(e) => return Err(PipeError::Io(e)),
        }
    }
    Ok(())
}

/// Reads frames from a non-blocking pipe end, buffering what arrives early.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// A reader with an empty buffer.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Reads until `buf` holds at least `n` bytes.
    fn fill<R: Read + AsFd>(
        &mut self,
        r: &mut R,
        n: usize,
        deadline: Instant,
    ) -> Result<(), PipeError> {
        let mut chunk = [0u8; 64 * 1024];
        while self.buf.len() < n {
            match r.read(&mut chunk) {
                Ok(0) => return Err(PipeError::Closed),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => wait(r, PollFlags::IN, deadline)?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(PipeError::Io(e)),
            }
        }
        Ok(())
    }

    /// Reads one frame's payload before `deadline`.
    pub fn read_frame<R: Read + AsFd>(
        &mut self,
        r: &mut R,
        deadline: Instant,
    ) -> Result<Vec<u8>, PipeError> {
        self.fill(r, 4, deadline)?;
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(PipeError::TooLarge(len));
        }
        self.fill(r, 4 + len, deadline)?;
        let payload = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().expect("socketpair");
        set_nonblocking(&a).expect("nonblocking");
        set_nonblocking(&b).expect("nonblocking");
        (a, b)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn frames_round_trip_including_split_and_batched_ones() {
        let (mut a, mut b) = pair();
        write_frame(&mut a, b"[\"one\"]", soon()).expect("write");
        write_frame(&mut a, b"", soon()).expect("write");
        // A frame written in two halves (the reader sees a partial header).
        a.write_all(&[0, 0]).expect("half");
        let mut r = FrameReader::new();
        assert_eq!(r.read_frame(&mut b, soon()).expect("read"), b"[\"one\"]");
        assert_eq!(r.read_frame(&mut b, soon()).expect("read"), b"");
        a.write_all(&[0, 3, b'a', b'b', b'c']).expect("rest");
        assert_eq!(r.read_frame(&mut b, soon()).expect("read"), b"abc");
    }

    #[test]
    fn a_silent_peer_times_out_at_the_deadline() {
        let (_a, mut b) = pair();
        let start = Instant::now();
        let err = FrameReader::new()
            .read_frame(&mut b, start + Duration::from_millis(100))
            .expect_err("nothing to read");
        assert!(matches!(err, PipeError::TimedOut), "{err:?}");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(3));
    }

    #[test]
    fn a_peer_that_stops_reading_times_the_writer_out() {
        let (mut a, _b) = pair();
        let big = vec![b'x'; 8 << 20];
        let err = write_frame(&mut a, &big, Instant::now() + Duration::from_millis(100))
            .expect_err("the peer never reads");
        assert!(matches!(err, PipeError::TimedOut), "{err:?}");
    }

    #[test]
    fn a_closed_peer_is_reported_as_closed() {
        let (a, mut b) = pair();
        let mut a = a;
        a.write_all(&[0, 0, 0, 9, b'x']).expect("partial frame");
        drop(a);
        let err = FrameReader::new()
            .read_frame(&mut b, soon())
            .expect_err("cut short");
        assert!(matches!(err, PipeError::Closed), "{err:?}");
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let (mut a, mut b) = pair();
        a.write_all(&u32::MAX.to_be_bytes()).expect("header");
        let err = FrameReader::new()
            .read_frame(&mut b, soon())
            .expect_err("too large");
        assert!(matches!(err, PipeError::TooLarge(_)), "{err:?}");
    }
}
