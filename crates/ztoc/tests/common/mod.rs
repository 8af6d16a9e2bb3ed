//! Helpers shared by the zTOC integration tests: layer generation and checks.
#![allow(dead_code)]
use flate2::write::GzEncoder;
use flate2::Compression;
use soci_ztoc::build::{build_ztoc, BuildOptions, LayerCompression, NoProgress};
use soci_ztoc::{codec, Ztoc};
use std::io::{Cursor, Write};

/// A tar being built entry by entry with full control of the headers.
pub(crate) struct TarMaker {
    pub b: tar::Builder<Vec<u8>>,
}

impl TarMaker {
    pub(crate) fn new() -> Self {
        TarMaker {
            b: tar::Builder::new(Vec::new()),
        }
    }
    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_uid(1000);
        h.set_gid(1000);
        h
    }
    pub(crate) fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, data.len() as u64);
        self.b.append_data(&mut h, name, data).unwrap();
        self
    }
    pub(crate) fn dir(&mut self, name: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, 0);
        h.set_mode(0o755);
        self.b.append_data(&mut h, name, &[][..]).unwrap();
        self
    }
    pub(crate) fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, 0);
        self.b.append_link(&mut h, name, target).unwrap();
        self
    }
    pub(crate) fn node(
        &mut self,
        kind: tar::EntryType,
        name: &str,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = Self::header(kind, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, name, &[][..]).unwrap();
        self
    }
    /// A PAX extended header (`x`) with these records, applying to the next entry.
    pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body_len = 1 + k.len() + 1 + v.len() + 1; // " k=v\n"
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("PaxHeaders/x").unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.b.append(&h, &data[..]).unwrap();
        self
    }
    /// An entry with a raw header, e.g. a type soci refuses.
    pub(crate) fn raw(&mut self, kind: tar::EntryType, name: &str, data: &[u8]) -> &mut Self {
        let mut h = Self::header(kind, data.len() as u64);
        h.set_path(name).unwrap();
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub(crate) fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Builds a zTOC in memory, checks that it survives encode/decode, returns it.
pub(crate) fn build(blob: &[u8], compression: LayerCompression, span: u64) -> Ztoc {
    let mut opts = BuildOptions::new(compression);
    opts.span_size = span;
    let built = build_ztoc(Cursor::new(blob), &opts, &mut NoProgress).expect("build");
    let bytes = codec::encode(&built.ztoc);
    let decoded = codec::decode(&bytes).expect("decode what we encoded");
    assert_eq!(decoded, built.ztoc, "encode/decode round trip");
    built.ztoc
}

pub(crate) fn build_err(blob: &[u8], compression: LayerCompression, span: u64) -> String {
    let mut opts = BuildOptions::new(compression);
    opts.span_size = span;
    match build_ztoc(Cursor::new(blob), &opts, &mut NoProgress) {
        Ok(_) => panic!("expected the build to fail"),
        Err(e) => e.to_string(),
    }
}

/// Reads every regular file back through the zTOC and compares it with `tar`'s view.
pub(crate) fn check_all_files(z: &Ztoc, blob: &[u8], tar_bytes: &[u8]) -> usize {
    let zinfo = z.zinfo().expect("zinfo");
    let mut ar = tar::Archive::new(Cursor::new(tar_bytes));
    let mut checked = 0;
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path_bytes().into_owned();
        let mut want = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut want).unwrap();
        let e = z
            .toc
            .entries
            .iter()
            .find(|e| e.name == name)
            .expect("entry in ztoc");
        assert_eq!(
            e.uncompressed_offset as u64,
            entry.raw_file_position(),
            "offset of {:?}",
            e.name_lossy()
        );
        let got = z
            .extract_entry(&zinfo, e, &mut Cursor::new(blob))
            .expect("extract");
        assert!(got == want, "content of {:?} differs", e.name_lossy());
        checked += 1;
    }
    checked
}
