#![no_main]

// The checks are shared with their mirrors in tests/fuzz_mirrors.rs; each target uses one.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::policy_record(data);
});
