//! The `open_read` target: hostile channel images opened and used through every entry point. The
//! body, and the layout of an input, are in `fuzz/src/open_read.rs`, which the stable tests
//! (`tests/hostile.rs`) also run.

#![no_main]

#[path = "../src/open_read.rs"]
mod open_read;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    open_read::run(data);
});
