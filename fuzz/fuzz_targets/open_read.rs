//! The `open_read` target: hostile channel images opened and used through every entry point. The
//! body, and the layout of an input, are in `tests/hostile/open_read.rs`, which the stable tests
//! (`tests/hostile.rs`) also run: it lives in the `mmf` package, whose published tests need it.

#![no_main]

#[path = "../../tests/hostile/open_read.rs"]
mod open_read;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    open_read::run(data);
});
