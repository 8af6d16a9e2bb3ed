//! Two SHA-256 digests over the same bytes, advanced block by block in
//! alternation.
//!
//! The builder hashes every compressed byte twice: once for the blob digest
//! (checked against the layer descriptor) and once for the digest of the span
//! it falls in. A single SHA-256 stream is one long chain of dependent rounds:
//! with the x86 SHA extensions the core waits on each round's result. Two
//! independent streams interleaved block by block let the out-of-order core
//! overlap their rounds: on this project's machine (Xeon with SHA-NI) two
//! streams run about 1.2x faster alternated than one after the other (best of
//! 15, 16 MiB: 1.27 vs 1.54 GB/s of hashed bytes).
//!
//! The compression function is sha2's own (`block_api::compress256`, with its
//! run-time CPU feature detection); this module only keeps the block buffer,
//! the length and the padding, and decides the order of the calls.
use sha2::block_api::compress256;

const BLOCK: usize = 64;

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// One SHA-256 computation.
#[derive(Clone)]
pub(crate) struct Sha256Stream {
    state: [u32; 8],
    pending: [u8; BLOCK],
    npending: usize,
    len: u64,
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256Stream {
    pub(crate) fn new() -> Self {
        Sha256Stream {
            state: IV,
            pending: [0; BLOCK],
            npending: 0,
            len: 0,
        }
    }

    /// Completes a partly filled block from the front of `data` (compressing it
    /// when full) and returns what is left of `data`, which then starts on a
    /// block boundary of this stream unless it is empty.
    fn top_up<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.npending == 0 {
            return data;
        }
        let take = (BLOCK - self.npending).min(data.len());
        self.pending[self.npending..self.npending + take].copy_from_slice(&data[..take]);
        self.npending += take;
        if self.npending == BLOCK {
            compress256(&mut self.state, &[self.pending]);
            self.npending = 0;
        }
        &data[take..]
    }

    /// Keeps a tail shorter than a block for later.
    fn stash(&mut self, tail: &[u8]) {
        debug_assert!(self.npending == 0 || tail.is_empty());
        self.pending[self.npending..self.npending + tail.len()].copy_from_slice(tail);
        self.npending += tail.len();
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        let rest = self.top_up(data);
        let (blocks, tail) = rest.as_chunks::<BLOCK>();
        compress256(&mut self.state, blocks);
        self.stash(tail);
    }

    /// Feeds the same bytes to two streams, alternating their blocks.
    pub(crate) fn update_both(a: &mut Sha256Stream, b: &mut Sha256Stream, data: &[u8]) {
        a.len += data.len() as u64;
        b.len += data.len() as u64;
        let rest_a = a.top_up(data);
        let rest_b = b.top_up(data);
        let (blocks_a, tail_a) = rest_a.as_chunks::<BLOCK>();
        let (blocks_b, tail_b) = rest_b.as_chunks::<BLOCK>();
        let both = blocks_a.len().min(blocks_b.len());
        for (x, y) in blocks_a[..both].iter().zip(&blocks_b[..both]) {
            compress256(&mut a.state, std::slice::from_ref(x));
            compress256(&mut b.state, std::slice::from_ref(y));
        }
        compress256(&mut a.state, &blocks_a[both..]);
        compress256(&mut b.state, &blocks_b[both..]);
        a.stash(tail_a);
        b.stash(tail_b);
    }

    /// The digest, as `sha256:<hex>`.
    pub(crate) fn finish(mut self) -> String {
        let bits = self.len.wrapping_mul(8);
        let mut last = [0u8; 2 * BLOCK];
        last[..self.npending].copy_from_slice(&self.pending[..self.npending]);
        last[self.npending] = 0x80;
        // One block if the length still fits after the 0x80 byte, else two.
        let total = if self.npending + 1 + 8 <= BLOCK {
            BLOCK
        } else {
            2 * BLOCK
        };
        last[total - 8..total].copy_from_slice(&bits.to_be_bytes());
        let (blocks, _) = last[..total].as_chunks::<BLOCK>();
        compress256(&mut self.state, blocks);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        format!("sha256:{}", hex::encode(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn reference(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            Sha256Stream::new().finish(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut s = Sha256Stream::new();
        s.update(b"abc");
        assert_eq!(
            s.finish(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// Every length around the padding edges (55, 56, 63, 64 ...), every split
    /// point, with and without a second stream that started elsewhere.
    #[test]
    fn matches_sha2_for_all_lengths_and_splits() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for len in 0..200 {
            let d = &data[..len];
            for cut in (0..=len).step_by(7).chain([len]) {
                let mut a = Sha256Stream::new();
                a.update(&d[..cut]);
                a.update(&d[cut..]);
                assert_eq!(a.finish(), reference(d), "len {len} cut {cut}");

                // b already holds a prefix of `offset` bytes, so its blocks
                // are not aligned with a's.
                for offset in [0usize, 1, 13, 63, 64, 100] {
                    let prefix = &data[200..200 + offset];
                    let mut a = Sha256Stream::new();
                    let mut b = Sha256Stream::new();
                    b.update(prefix);
                    Sha256Stream::update_both(&mut a, &mut b, &d[..cut]);
                    Sha256Stream::update_both(&mut a, &mut b, &d[cut..]);
                    assert_eq!(
                        a.finish(),
                        reference(d),
                        "len {len} cut {cut} offset {offset}"
                    );
                    let mut whole = prefix.to_vec();
                    whole.extend_from_slice(d);
                    assert_eq!(
                        b.finish(),
                        reference(&whole),
                        "len {len} cut {cut} offset {offset}"
                    );
                }
            }
        }
    }
}
