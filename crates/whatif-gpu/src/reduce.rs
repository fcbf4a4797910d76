//! Device-side reductions (planned): see the crate report. For now every
//! reduction runs on the host over read-back columns, in f64, in block
//! order, exactly as on the CPU.
