//! Reports: the JSON report of a run, its manifest (the audit trail), and
//! the JSON Schemas that describe them. This crate never touches a backend.

pub mod backtest;
pub mod report;
pub mod schema;

pub use report::*;
pub mod charts;
pub mod dag;
pub mod diff;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod part;
pub mod sweep;
