#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| soci_fuzz::targets::checkpoint_tar(data));
