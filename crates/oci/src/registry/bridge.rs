//! The blocking bridge: one process-wide tokio runtime that callers (plain
//! threads) block on; a download task's chunks reach them through a bounded
//! channel read by [`crate::ChannelReader`].
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
