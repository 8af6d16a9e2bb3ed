//! [`ChannelReader`]: the receiving end of a queue of byte chunks, read as a
//! [`Read`]. One type serves both queues the project has: the registry's
//! download tasks feed a tokio channel that plain threads read, and the image
//! pipeline's tee feeds a `std` channel that another thread reads.
use bytes::Bytes;
use std::io::{self, Read};

/// A queue end that [`ChannelReader`] can wait on.
pub trait ChunkReceiver {
    /// One chunk of bytes, as the queue carries it.
    type Chunk: AsRef<[u8]> + Default;

    /// Waits for the next chunk; `None` once every sender is gone (the end of
    /// the stream), `Some(Err)` where the producer reported a failure.
    fn next_chunk(&mut self) -> Option<io::Result<Self::Chunk>>;
}

impl ChunkReceiver for std::sync::mpsc::Receiver<Vec<u8>> {
    type Chunk = Vec<u8>;

    fn next_chunk(&mut self) -> Option<io::Result<Vec<u8>>> {
        self.recv().ok().map(Ok)
    }
}

/// Waits with `blocking_recv`, which panics inside a tokio runtime: readers of
/// registry streams are plain threads (see [`crate::ImageSource`]).
impl ChunkReceiver for tokio::sync::mpsc::Receiver<io::Result<Bytes>> {
    type Chunk = Bytes;

    fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        self.blocking_recv()
    }
}

/// Reads the chunks of a queue in order; EOF once every sender is dropped (the
/// producer finished, or gave up without a word), an error where the producer
/// sent one.
pub struct ChannelReader<R: ChunkReceiver> {
    rx: R,
    cur: R::Chunk,
    pos: usize,
}

impl<R: ChunkReceiver> ChannelReader<R> {
    /// A reader of everything `rx` will receive.
    pub fn new(rx: R) -> Self {
        Self::starting_with(rx, R::Chunk::default())
    }

    /// A reader that gives `first` (a chunk already taken from `rx`, e.g. to
    /// fail fast before handing out the reader) before the rest of `rx`.
    pub fn starting_with(rx: R, first: R::Chunk) -> Self {
        ChannelReader {
            rx,
            cur: first,
            pos: 0,
        }
    }
}

impl<R: ChunkReceiver> Read for ChannelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.as_ref().len() {
            match self.rx.next_chunk() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
            }
        }
        let rest = &self.cur.as_ref()[self.pos..];
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_std_queue_reads_to_the_end_in_small_reads() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        tx.send(b"abc".to_vec()).unwrap();
        tx.send(Vec::new()).unwrap();
        tx.send(b"defg".to_vec()).unwrap();
        drop(tx);
        let mut r = ChannelReader::new(rx);
        let mut out = Vec::new();
        let mut buf = [0u8; 2];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, b"abcdefg");
    }

    #[test]
    fn a_tokio_queue_gives_the_first_chunk_then_the_producers_error() {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        tx.try_send(Ok(Bytes::from_static(b"two"))).unwrap();
        tx.try_send(Err(io::Error::other("connection reset")))
            .unwrap();
        drop(tx);
        let mut r = ChannelReader::starting_with(rx, Bytes::from_static(b"one "));
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out).unwrap(), 4);
        assert_eq!(&out[..4], b"one ");
        assert_eq!(r.read(&mut out).unwrap(), 3);
        assert_eq!(&out[..3], b"two");
        assert_eq!(
            r.read(&mut out).unwrap_err().to_string(),
            "connection reset"
        );
        assert_eq!(r.read(&mut out).unwrap(), 0);
    }
}
