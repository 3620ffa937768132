//! Arbitrary bytes as the body of POST /validate: never a panic, always a 400 or a review.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::judge(data));
