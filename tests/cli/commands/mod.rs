pub(crate) mod bench;
mod digests;
mod output;
mod parity;
mod pipe;
mod sources;
