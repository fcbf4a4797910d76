//! End-to-end tests of the whatif CLI.
