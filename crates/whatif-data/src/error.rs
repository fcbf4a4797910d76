//! The errors of this crate: bad data (file, row, column, value), models
//! that cannot be fitted or abducted (naming the node and why), and stale
//! or malformed fit locks. Messages are lowercase without a final period;
//! [`DataError::code`] is a stable string for machines.

/// Everything that can go wrong reading data, fitting or backtesting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    /// The file cannot be opened or read.
    #[error("{path}: cannot read: {message}")]
    Io { path: String, message: String },
    /// The scenario has no `[data]` section.
    #[error("the scenario has no `[data]` section")]
    NoDataSection,
    /// The file has a header but no rows (or nothing at all).
    #[error("{path}: the file has no data rows")]
    Empty { path: String },
    /// A column the scenario needs is not in the file.
    #[error("{path}: missing column `{column}` (for {what}){}", help.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    MissingColumn {
        path: String,
        column: String,
        what: String,
        help: Option<String>,
    },
    /// A cell that is not a number.
    #[error("{path}:{row}: column `{column}`: `{value}` is not a number")]
    NonNumeric {
        path: String,
        /// 1-based line in a CSV file (the header is line 1); 1-based data
        /// row in a Parquet file.
        row: u64,
        column: String,
        value: String,
    },
    /// A period cell that is not a period number, or out of order.
    #[error("{path}:{row}: column `{column}`: period `{value}`: {reason}")]
    BadPeriod {
        path: String,
        row: u64,
        column: String,
        value: String,
        reason: String,
    },
    /// A lag that reads a row the unit does not have.
    #[error("{path}:{row}: unit `{unit}`: node `{node}`: {reason}")]
    MissingLag {
        path: String,
        row: u64,
        unit: String,
        node: String,
        reason: String,
    },
    /// A missing value (empty cell, NaN, null) where a node must be observed.
    #[error(
        "{path}:{row}: column `{column}`: missing value (`{value}`) but node `{node}` must be observed"
    )]
    MissingValue {
        path: String,
        row: u64,
        column: String,
        node: String,
        value: String,
    },
    /// A latent node (never observed) has a column in the file.
    #[error(
        "{path}: latent node `{node}` has a column `{column}`; a latent node is never observed (rename the column or make the node observed)"
    )]
    LatentHasColumn {
        path: String,
        node: String,
        column: String,
    },
    /// A column of a type that cannot be read as numbers.
    #[error("{path}: column `{column}` has type {ty}, which is not numeric")]
    ColumnType {
        path: String,
        column: String,
        ty: String,
    },
    /// A malformed CSV or Parquet file.
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    /// A mechanism that `whatif fit` cannot estimate.
    #[error("node `{node}`: cannot fit: {reason}")]
    CannotFit { node: String, reason: String },
    /// A mechanism (or model) that cannot be abducted.
    #[error("node `{node}`: cannot abduct: {reason}")]
    CannotAbduct { node: String, reason: String },
    /// An observed value that the mechanism cannot produce.
    #[error(
        "{path}:{row}: node `{node}`: observed value {value} is impossible under its mechanism ({reason})"
    )]
    Impossible {
        path: String,
        row: u64,
        node: String,
        value: f64,
        reason: String,
    },
    /// `?params` without a fit lock.
    #[error(
        "the scenario has fitted parameters ({params}) but no fit lock `{lock}`; run `whatif fit` first"
    )]
    NoLock { params: String, lock: String },
    /// A lock whose data or scenario hash no longer matches.
    #[error(
        "fit lock `{lock}` is stale: {what} changed since the fit (lock {locked}, now {now}); rerun `whatif fit` or pass --stale-fit-ok"
    )]
    StaleLock {
        lock: String,
        what: String,
        locked: String,
        now: String,
    },
    /// A lock that does not parse or does not match the scenario's params.
    #[error("fit lock `{lock}`: {message}")]
    BadLock { lock: String, message: String },
    /// A bad backtest request (unknown policy, unsupported metric, …).
    #[error("{0}")]
    Usage(String),
}

impl DataError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DataError::Io { .. } => "whatif::data::io",
            DataError::NoDataSection => "whatif::data::no_data_section",
            DataError::Empty { .. } => "whatif::data::empty",
            DataError::MissingColumn { .. } => "whatif::data::missing_column",
            DataError::NonNumeric { .. } => "whatif::data::non_numeric",
            DataError::BadPeriod { .. } => "whatif::data::bad_period",
            DataError::MissingLag { .. } => "whatif::backtest::missing_lag",
            DataError::MissingValue { .. } => "whatif::data::missing_value",
            DataError::LatentHasColumn { .. } => "whatif::data::latent_has_column",
            DataError::ColumnType { .. } => "whatif::data::column_type",
            DataError::Format { .. } => "whatif::data::format",
            DataError::CannotFit { .. } => "whatif::fit::unsupported",
            DataError::CannotAbduct { .. } => "whatif::backtest::cannot_abduct",
            DataError::Impossible { .. } => "whatif::backtest::impossible_value",
            DataError::NoLock { .. } => "whatif::fit::no_lock",
            DataError::StaleLock { .. } => "whatif::fit::stale_lock",
            DataError::BadLock { .. } => "whatif::fit::bad_lock",
            DataError::Usage(_) => "whatif::backtest::usage",
        }
    }
}
