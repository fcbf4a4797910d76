//! Fuzz target: parse + resolve (and render) arbitrary UTF-8 must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data)
        && let Err(diags) = whatif_lang::compile(source)
    {
        let _ = whatif_lang::render_diagnostics(&diags, "fuzz.toml", source);
        let _ = whatif_lang::diagnostics_json(&diags, "fuzz.toml", source);
    }
});
