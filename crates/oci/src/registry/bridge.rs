//! The blocking bridge: one process-wide tokio runtime that callers (plain
//! threads) block on, and the reader that hands a download task's chunks to
//! them through a bounded channel.
use bytes::Bytes;
use std::io::Read;
use std::sync::OnceLock;

/// Chunks buffered between the download task and the reader.
pub(super) const STREAM_CHANNEL_CHUNKS: usize = 16;

pub(super) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("soci-oci-registry")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

pub(super) struct ChannelReader {
    pub(super) rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    pub(super) cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.cur = b,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}
