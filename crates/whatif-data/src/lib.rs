//! Observed data for whatif: reading rows (CSV, Parquet) in chunks,
//! fitting `?params` ([`fit`]), and counterfactual backtests by abduction,
//! action and prediction ([`backtest`]).
//!
//! Everything here is f64 and runs on the CPU: a backtest replays observed
//! rows one at a time through a reference evaluator of the validated model's
//! expressions ([`eval`]), with the same transform formulas as
//! `whatif_ir::dist`. Rows stream through in chunks
//! ([`table::DataSource::for_each_chunk`]), so memory is bounded by the chunk,
//! the number of periods and the number of posterior draws, never by the
//! number of rows.

pub mod abduct;
pub mod backtest;
pub mod error;
pub mod eval;
pub mod fit;
pub mod history;
pub mod lock;
pub mod mle;
pub mod replay;
pub mod rows_out;
pub mod simulate;
pub mod sketch;
pub mod table;

pub use error::DataError;
pub use table::{Chunk, DataSource};

/// Hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file, read in blocks (a data file may be large).
pub fn sha256_file(path: &std::path::Path) -> Result<String, DataError> {
    use sha2::Digest;
    use std::io::Read;
    let io = |e: std::io::Error| DataError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
