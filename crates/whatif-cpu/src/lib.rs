//! Fused, chunked, multi-threaded CPU executor for verified Programs.
