//! Copying a byte stream to a second consumer on another thread, in the same
//! pass: [`Tee`] sends a copy of every chunk read or written through it into a
//! bounded queue, and [`QueueReader`] is that queue's other end as a reader
//! (soci-oci's [`ChannelReader`], which also reads registry downloads).
//!
//! `create --dest` tees each layer the zTOC builder reads to the upload
//! (the upload is optional: if it stops, the build goes on alone); the
//! docker-archive path tees the compressed layer it writes to the store to the
//! zTOC builder (the build is required: if it stops, so does the write). The
//! queue is bounded so the slower side sets the pace and memory stays small.
use soci_oci::ChannelReader;
use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender};

/// What a [`Tee`] does when the copy's receiver hangs up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OnHangup {
    /// Go on without the copy.
    Continue,
    /// Fail every further read or write with [`CopyStopped`] carrying this
    /// message.
    Fail(&'static str),
}

/// The receiver of a [`Tee`]'s copy hung up while the tee could not go on
/// without it (see [`OnHangup::Fail`]).
#[derive(Debug)]
pub(crate) struct CopyStopped(&'static str);

impl std::fmt::Display for CopyStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for CopyStopped {}

/// A reader or writer that also queues a copy of every chunk passing through.
pub(crate) struct Tee<T> {
    inner: T,
    copy: Option<SyncSender<Vec<u8>>>,
    on_hangup: OnHangup,
}

impl<T> Tee<T> {
    /// Tees `inner` to `copy` (no copy when `None`).
    pub(crate) fn new(inner: T, copy: Option<SyncSender<Vec<u8>>>, on_hangup: OnHangup) -> Self {
        Tee {
            inner,
            copy,
            on_hangup,
        }
    }

    /// Ends the copy (its reader then sees the end of the stream) and gives
    /// back the inner reader or writer.
    pub(crate) fn into_inner(self) -> T {
        self.inner
    }

    fn send(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if let Some(tx) = &self.copy {
            if tx.send(chunk.to_vec()).is_err() {
                match self.on_hangup {
                    OnHangup::Continue => self.copy = None,
                    OnHangup::Fail(why) => return Err(std::io::Error::other(CopyStopped(why))),
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.send(&buf[..n])?;
        }
        Ok(n)
    }
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write_all(buf)?;
        self.send(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The receiving end of a [`Tee`]'s bounded queue, as a reader: EOF once
/// every sender is dropped (the producer finished, or gave up).
pub(crate) type QueueReader = ChannelReader<Receiver<Vec<u8>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn a_read_tee_goes_on_alone_when_the_copy_stops() {
        let (tx, rx) = sync_channel(1);
        drop(rx);
        let mut t = Tee::new(&b"layer bytes"[..], Some(tx), OnHangup::Continue);
        let mut out = Vec::new();
        t.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"layer bytes");
    }

    #[test]
    fn a_write_tee_fails_when_a_required_copy_stops() {
        let (tx, rx) = sync_channel(1);
        drop(rx);
        let mut t = Tee::new(Vec::new(), Some(tx), OnHangup::Fail("the builder stopped"));
        let e = t.write_all(b"x").unwrap_err();
        assert!(e.get_ref().is_some_and(|x| x.is::<CopyStopped>()));
        assert_eq!(e.to_string(), "the builder stopped");
    }

    #[test]
    fn the_copy_reads_what_went_through() {
        let (tx, rx) = sync_channel(4);
        let copy = std::thread::spawn(move || {
            let mut v = Vec::new();
            QueueReader::new(rx).read_to_end(&mut v).unwrap();
            v
        });
        let mut t = Tee::new(Vec::new(), Some(tx), OnHangup::Fail("stopped"));
        t.write_all(b"abc").unwrap();
        t.write_all(b"def").unwrap();
        assert_eq!(t.into_inner(), b"abcdef");
        assert_eq!(copy.join().unwrap(), b"abcdef");
    }
}
