//! Streaming, mergeable Monte Carlo statistics over plain slices.
