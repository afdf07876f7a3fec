//! Arbitrary text → `floodgate_config::from_str`.
//!
//! Invariants: no panic; every error has a line and column inside the
//! text (line 1.., column 1..); a configuration that loads renders its
//! summary and `Debug` form without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match floodgate_config::from_str(text, "fuzz.toml") {
        Ok(config) => {
            let summary = config.summary();
            assert!(!summary.is_empty());
            let _ = format!("{config:?}");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error list with no error");
            let lines = text.split('\n').count();
            for error in &errors.0 {
                assert!(
                    error.line >= 1 && error.line <= lines,
                    "line {} of {lines}: {error}",
                    error.line
                );
                assert!(error.column >= 1, "column 0: {error}");
                let _ = error.to_string();
            }
        }
    }
});
