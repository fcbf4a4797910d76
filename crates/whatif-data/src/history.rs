//! Per-unit history for `lag(x, k)` in backtests and fits of multi-period
//! models.
//!
//! A data row is one unit in one period. `lag(x, k)` on a row of unit `u`
//! at period `t` reads `x` on `u`'s row at period `t − k`: during abduction
//! and fitting the *observed* value, during prediction the *counterfactual*
//! value of the same posterior draw, so a policy's effect carries over
//! from period to period. Before a unit's first row the node's `init`
//! applies (the unit's history starts with its first row, as the model's
//! starts at period 0).
//!
//! Rows stream in file order, so each unit's periods must strictly
//! increase down the file (rows of different units may interleave: a
//! file sorted by period works as well as one sorted by unit). A missing
//! period inside a unit's history that a lag needs is an error naming the
//! unit and the periods. Memory is one slot per unit, lagged node, draw
//! and period of lag depth — it grows with the number of units, never with
//! the number of rows.

use std::collections::{HashMap, VecDeque};

use whatif_lang::{CausalModel, Expr, ExprKind, NodeId};

use crate::DataError;

/// Every `lag(x, k)` in the model's mechanisms, edits and metrics, as
/// sorted unique `(x, k)` pairs.
pub fn lag_reads(model: &CausalModel) -> Vec<(NodeId, u32)> {
    let mut out = Vec::new();
    let mut visit = |e: &Expr| {
        e.walk(&mut |x| {
            if let ExprKind::Lag { node, k } = &x.kind {
                out.push((*node, *k));
            }
        })
    };
    for n in &model.nodes {
        visit(&n.expr);
    }
    for e in &model.edits {
        for ne in &e.nodes {
            visit(&ne.expr);
        }
    }
    for m in &model.metrics {
        for a in &m.args {
            visit(a);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The period number of a row: a non-negative integer (the model's
/// periods are numbered from 0).
pub fn period_number(path: &str, row: u64, column: &str, cell: &str) -> Result<u32, DataError> {
    cell.trim()
        .parse::<u32>()
        .ok()
        .or_else(|| {
            // Parquet integers and CSV cells like `3.0` arrive as text of a
            // number; accept integral values only.
            cell.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.fract() == 0.0 && *v >= 0.0 && *v <= f64::from(u32::MAX))
                .map(|v| v as u32)
        })
        .ok_or_else(|| DataError::BadPeriod {
            path: path.to_string(),
            row,
            column: column.to_string(),
            value: cell.to_string(),
            reason: "periods of a multi-period model are whole numbers from 0".into(),
        })
}

#[derive(Debug, Default)]
struct UnitHistory {
    first: u32,
    last: Option<(u32, u64)>,
    /// `(period, values)`, oldest first, at most `depth` entries.
    rows: VecDeque<(u32, Vec<f64>)>,
}

/// The lagged values of every unit seen so far; `width` values per
/// (unit, period): one per lagged node and slot (slot = posterior draw,
/// or 1 for observed values).
#[derive(Debug)]
pub struct History {
    nodes: Vec<NodeId>,
    slots: usize,
    depth: u32,
    units: HashMap<String, UnitHistory>,
    path: String,
    column: String,
}

/// Where a lag of one row reads from: the unit's rows before it.
#[derive(Debug, Clone, Copy)]
pub struct LagView<'a> {
    history: Option<&'a History>,
    unit: Option<&'a UnitHistory>,
    period: u32,
}

impl LagView<'_> {
    /// No history: every lag reads its node's `init`.
    pub const NONE: LagView<'static> = LagView {
        history: None,
        unit: None,
        period: 0,
    };

    /// `lag(node, k)` for slot `slot`: `Ok(None)` before the unit's first
    /// row (the node's `init` applies).
    pub fn get(&self, node: NodeId, k: u32, slot: usize) -> Result<Option<f64>, String> {
        let (Some(h), Some(u)) = (self.history, self.unit) else {
            return Ok(None);
        };
        let Some(target) = self.period.checked_sub(k) else {
            return Ok(None);
        };
        if target < u.first {
            return Ok(None);
        }
        let Some(j) = h.nodes.iter().position(|n| *n == node) else {
            return Err("the node is not lagged".into());
        };
        match u.rows.iter().find(|(p, _)| *p == target) {
            Some((_, v)) => Ok(Some(v[j * h.slots + slot])),
            None => Err(format!(
                "the unit has no row for period {target}, which `lag(…, {k})` at period {} reads",
                self.period
            )),
        }
    }
}

impl LagView<'_> {
    /// Whether slots `1..` (the per-draw counterfactuals) differ anywhere
    /// in the history a lag can read: when they do not, one draw of a
    /// point-identified row stands for all.
    pub fn draws_differ(&self) -> bool {
        let (Some(h), Some(u)) = (self.history, self.unit) else {
            return false;
        };
        u.rows.iter().any(|(_, v)| {
            v.chunks(h.slots)
                .any(|s| s.len() > 2 && s[2..].iter().any(|x| x.to_bits() != s[1].to_bits()))
        })
    }
}

impl History {
    /// History for the model's `reads` (from [`lag_reads`]) with `slots`
    /// values per node; `path` and `column` (the period column) name the
    /// data in diagnostics.
    pub fn new(reads: &[(NodeId, u32)], slots: usize, path: &str, column: &str) -> History {
        let mut nodes: Vec<NodeId> = reads.iter().map(|r| r.0).collect();
        nodes.dedup();
        History {
            nodes,
            slots: slots.max(1),
            depth: reads.iter().map(|r| r.1).max().unwrap_or(0),
            units: HashMap::new(),
            path: path.to_string(),
            column: column.to_string(),
        }
    }

    /// The lagged nodes.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Checks that `period` comes after the unit's last row, and returns
    /// the view its lags read. `row` is the file position (diagnostics).
    pub fn view(&mut self, unit: &str, period: u32, row: u64) -> Result<LagView<'_>, DataError> {
        let u = self
            .units
            .entry(unit.to_string())
            .or_insert_with(|| UnitHistory {
                first: period,
                ..UnitHistory::default()
            });
        if let Some((last, last_row)) = u.last
            && period <= last
        {
            return Err(DataError::BadPeriod {
                path: self.path.clone(),
                row,
                column: self.column.clone(),
                value: period.to_string(),
                reason: format!(
                    "unit `{unit}` is at period {last} on row {last_row}; each unit's rows must be in increasing period order"
                ),
            });
        }
        Ok(LagView {
            history: Some(self),
            unit: self.units.get(unit),
            period,
        })
    }

    /// Records the row of `unit` at `period`: `values(j, slot)` for the
    /// `j`-th lagged node.
    pub fn record(
        &mut self,
        unit: &str,
        period: u32,
        row: u64,
        values: impl Fn(usize, usize) -> f64,
    ) {
        let (n, slots, depth) = (self.nodes.len(), self.slots, self.depth);
        let u = self.units.entry(unit.to_string()).or_default();
        if u.last.is_none() {
            u.first = period;
        }
        u.last = Some((period, row));
        if depth == 0 || n == 0 {
            return;
        }
        let mut v = if u.rows.len() as u32 >= depth {
            u.rows.pop_front().map(|(_, v)| v).unwrap_or_default()
        } else {
            Vec::new()
        };
        v.clear();
        for j in 0..n {
            for s in 0..slots {
                v.push(values(j, s));
            }
        }
        u.rows.push_back((period, v));
        // A gap can leave rows older than any lag can reach.
        while u
            .rows
            .front()
            .is_some_and(|(p, _)| period.saturating_sub(*p) >= depth)
        {
            u.rows.pop_front();
        }
    }
}

/// Lag bookkeeping for one pass over the data of a multi-period model.
#[derive(Debug)]
pub struct Lags {
    reads: Vec<(NodeId, u32)>,
    history: History,
    periods: u32,
    column: String,
    path: String,
    names: Vec<String>,
}

/// The row a pass is at: its unit, its period number and the view its
/// lags read.
#[derive(Debug, Clone, Copy)]
pub struct RowAt<'a> {
    pub period: u32,
    pub view: LagView<'a>,
}

impl Lags {
    /// `None` for a model without `[periods]` (rows carry no order then).
    /// Refuses lagged nodes that are latent or whose `init` draws noise:
    /// their value before a unit's first row would be unobserved.
    pub fn new(
        model: &CausalModel,
        src: &crate::DataSource,
        slots: usize,
    ) -> Result<Option<Lags>, DataError> {
        if model.periods <= 1 && lag_reads(model).is_empty() {
            return Ok(None);
        }
        let Some(column) = src.period.clone() else {
            return Err(DataError::Usage(
                "a multi-period model's `[data]` needs a `period` column".into(),
            ));
        };
        let reads = lag_reads(model);
        for &(n, _) in &reads {
            let node = &model.nodes[n.index()];
            let why = if node.latent {
                Some("it is latent, so its previous value is never observed")
            } else if node.init.as_ref().is_some_and(crate::eval::has_draw) {
                Some(
                    "its `init` draws noise, so its value before a unit's first row is unobserved; give it a constant `init`",
                )
            } else {
                None
            };
            if let Some(why) = why {
                return Err(DataError::CannotAbduct {
                    node: node.name.clone(),
                    reason: format!("`lag({})` is read but {why}", node.name),
                });
            }
        }
        Ok(Some(Lags {
            history: History::new(&reads, slots, &src.display, &column),
            reads,
            periods: model.periods,
            path: src.display.clone(),
            names: model.nodes.iter().map(|n| n.name.clone()).collect(),
            column,
        }))
    }

    /// The lagged nodes, in the order [`Lags::record`] indexes them.
    pub fn nodes(&self) -> &[NodeId] {
        self.history.nodes()
    }

    /// Starts row `i` of `chunk`: parses its period, checks the unit's
    /// order and that every lag the model reads is there.
    pub fn row(&mut self, chunk: &crate::Chunk, i: usize) -> Result<RowAt<'_>, DataError> {
        let row = chunk.positions[i];
        let cell = chunk.period.as_ref().map_or("", |p| p[i].as_str());
        let period = period_number(&self.path, row, &self.column, cell)?;
        if period >= self.periods && self.periods > 1 {
            return Err(DataError::BadPeriod {
                path: self.path.clone(),
                row,
                column: self.column.clone(),
                value: cell.to_string(),
                reason: format!(
                    "the scenario's `[periods] count` is {}, so periods run from 0 to {}",
                    self.periods,
                    self.periods - 1
                ),
            });
        }
        let unit = chunk.unit.as_ref().map_or("", |u| u[i].as_str());
        let view = self.history.view(unit, period, row)?;
        for &(n, k) in &self.reads {
            if let Err(reason) = view.get(n, k, 0) {
                return Err(DataError::MissingLag {
                    path: self.path.clone(),
                    row,
                    unit: unit.to_string(),
                    node: self.names[n.index()].clone(),
                    reason,
                });
            }
        }
        Ok(RowAt { period, view })
    }

    /// Records row `i` of `chunk` (after [`Lags::row`]): `values(j, slot)`
    /// for the `j`-th of [`Lags::nodes`].
    pub fn record(
        &mut self,
        chunk: &crate::Chunk,
        i: usize,
        period: u32,
        values: impl Fn(usize, usize) -> f64,
    ) {
        let unit = chunk.unit.as_ref().map_or("", |u| u[i].as_str());
        self.history
            .record(unit, period, chunk.positions[i], values);
    }
}

/// The period count a `[periods]` section without `count` takes from the
/// data: the largest number in `column` + 1 (every cell a whole number).
/// `path` is the resolved file, `display` the path as written.
pub fn period_count(path: &std::path::Path, display: &str, column: &str) -> Result<u32, DataError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let src = crate::DataSource {
        path: path.to_path_buf(),
        display: display.to_string(),
        format: if ext == "parquet" || ext == "pq" {
            crate::table::Format::Parquet
        } else {
            crate::table::Format::Csv
        },
        nodes: Vec::new(),
        period: Some(column.to_string()),
        unit: None,
    };
    let header = src.header()?;
    if !header.iter().any(|h| h == column) {
        return Err(DataError::MissingColumn {
            path: display.to_string(),
            column: column.to_string(),
            what: "`[data] period`, which gives the `[periods]` count".into(),
            help: Some(format!("columns: {}", header.join(", "))),
        });
    }
    let mut max: Option<u32> = None;
    src.for_each_chunk(crate::table::DEFAULT_CHUNK_ROWS, |chunk| {
        let cells = chunk.period.as_deref().unwrap_or(&[]);
        for (i, cell) in cells.iter().enumerate() {
            let p = period_number(display, chunk.positions[i], column, cell)?;
            max = Some(max.map_or(p, |m| m.max(p)));
        }
        Ok(())
    })?;
    match max {
        Some(m) => Ok(m + 1),
        None => Err(DataError::Empty {
            path: display.to_string(),
        }),
    }
}
