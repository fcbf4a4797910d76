//! Reading observed rows in chunks, from CSV or Parquet.
//!
//! [`DataSource::open`] checks the header against the scenario's `[data]`
//! mapping (missing columns, latent nodes with a column) before any row is
//! read; [`DataSource::for_each_chunk`] then streams the file in chunks of
//! `chunk_rows` rows, converting every mapped cell to f64 and stopping at
//! the first bad cell with its row and column. Callers that need several
//! passes (iterative fits) call it again: nothing is kept between passes,
//! so a file of any length fits in memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use whatif_lang::CausalModel;
use whatif_lang::diag::did_you_mean;

use crate::DataError;

/// Rows per chunk unless a caller asks otherwise.
pub const DEFAULT_CHUNK_ROWS: usize = 8192;

/// File formats, chosen by extension (`.parquet`/`.pq`, else CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// One chunk of rows, columns already converted.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    /// 0-based index of the chunk's first data row in the file.
    pub first_row: u64,
    pub n_rows: usize,
    /// One column per entry of [`DataSource::nodes`], in that order.
    pub values: Vec<Vec<f64>>,
    /// The period of each row, when `[data] period` is set.
    pub period: Option<Vec<String>>,
    /// The unit id of each row, when `[data] unit` is set.
    pub unit: Option<Vec<String>>,
    /// The file position of each row used in messages: the 1-based line of
    /// a CSV record, the 1-based data row of a Parquet file.
    pub positions: Vec<u64>,
}

/// An opened, header-checked data file.
#[derive(Debug, Clone)]
pub struct DataSource {
    /// The resolved path (scenario directory joined with `[data] path`).
    pub path: PathBuf,
    /// The path as shown in messages (as written in the scenario).
    pub display: String,
    pub format: Format,
    /// Observed nodes, in `[data]` column order: (node index, column name).
    pub nodes: Vec<(usize, String)>,
    pub period: Option<String>,
    pub unit: Option<String>,
}

fn io_err(path: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.to_string(),
        message: e.to_string(),
    }
}

fn fmt_err(path: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Format {
        path: path.to_string(),
        message: e.to_string(),
    }
}

impl DataSource {
    /// Opens the file named by the model's `[data]` section (relative to
    /// `scenario_dir`) and checks its header.
    pub fn open(model: &CausalModel, scenario_dir: &Path) -> Result<DataSource, DataError> {
        let spec = model.data.as_ref().ok_or(DataError::NoDataSection)?;
        let path = scenario_dir.join(&spec.path);
        Self::open_path(model, &path, &spec.path)
    }

    /// Like [`DataSource::open`] with an explicit path (tests, `--data`).
    pub fn open_path(
        model: &CausalModel,
        path: &Path,
        display: &str,
    ) -> Result<DataSource, DataError> {
        let spec = model.data.as_ref().ok_or(DataError::NoDataSection)?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let format = if ext == "parquet" || ext == "pq" {
            Format::Parquet
        } else {
            Format::Csv
        };
        let src = DataSource {
            path: path.to_path_buf(),
            display: display.to_string(),
            format,
            nodes: spec
                .columns
                .iter()
                .map(|c| (c.node.index(), c.column.clone()))
                .collect(),
            period: spec.period.as_ref().map(|p| p.0.clone()),
            unit: spec.unit.as_ref().map(|p| p.0.clone()),
        };
        let header = src.header()?;
        let mut need: Vec<(String, String)> = src
            .nodes
            .iter()
            .map(|(n, c)| (c.clone(), format!("node `{}`", model.nodes[*n].name)))
            .collect();
        if let Some(p) = &src.period {
            need.push((p.clone(), "`[data] period`".into()));
        }
        if let Some(u) = &src.unit {
            need.push((u.clone(), "`[data] unit`".into()));
        }
        for (col, what) in need {
            if !header.contains(&col) {
                return Err(DataError::MissingColumn {
                    path: src.display.clone(),
                    help: did_you_mean(&col, header.iter().map(String::as_str))
                        .or_else(|| Some(format!("columns: {}", header.join(", ")))),
                    column: col,
                    what,
                });
            }
        }
        for n in model.nodes.iter().filter(|n| n.latent) {
            if header.contains(&n.name) {
                return Err(DataError::LatentHasColumn {
                    path: src.display.clone(),
                    node: n.name.clone(),
                    column: n.name.clone(),
                });
            }
        }
        Ok(src)
    }

    /// Column names of the file.
    pub(crate) fn header(&self) -> Result<Vec<String>, DataError> {
        let d = &self.display;
        match self.format {
            Format::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .from_path(&self.path)
                    .map_err(|e| io_err(d, e))?;
                let h = r.headers().map_err(|e| fmt_err(d, e))?;
                let cols: Vec<String> = h.iter().map(|s| s.trim().to_string()).collect();
                if cols.iter().all(String::is_empty) {
                    return Err(DataError::Empty { path: d.clone() });
                }
                Ok(cols)
            }
            Format::Parquet => {
                let f = File::open(&self.path).map_err(|e| io_err(d, e))?;
                let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .map_err(|e| fmt_err(d, e))?;
                Ok(b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect())
            }
        }
    }

    /// Streams the file in chunks of `chunk_rows` rows through `f`; returns
    /// the number of rows. A file without rows is an error.
    pub fn for_each_chunk(
        &self,
        chunk_rows: usize,
        mut f: impl FnMut(&Chunk) -> Result<(), DataError>,
    ) -> Result<u64, DataError> {
        let chunk_rows = chunk_rows.max(1);
        let n = match self.format {
            Format::Csv => self.csv_chunks(chunk_rows, &mut f)?,
            Format::Parquet => self.parquet_chunks(chunk_rows, &mut f)?,
        };
        if n == 0 {
            return Err(DataError::Empty {
                path: self.display.clone(),
            });
        }
        Ok(n)
    }

    fn new_chunk(&self, first_row: u64) -> Chunk {
        Chunk {
            first_row,
            n_rows: 0,
            values: vec![Vec::new(); self.nodes.len()],
            period: self.period.as_ref().map(|_| Vec::new()),
            unit: self.unit.as_ref().map(|_| Vec::new()),
            positions: Vec::new(),
        }
    }

    fn csv_chunks(
        &self,
        chunk_rows: usize,
        f: &mut dyn FnMut(&Chunk) -> Result<(), DataError>,
    ) -> Result<u64, DataError> {
        let d = &self.display;
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(&self.path)
            .map_err(|e| io_err(d, e))?;
        let header: Vec<String> = r
            .headers()
            .map_err(|e| fmt_err(d, e))?
            .iter()
            .map(|s| s.trim().to_string())
            .collect();
        let idx = |c: &str| header.iter().position(|h| h == c);
        let node_idx: Vec<usize> = self
            .nodes
            .iter()
            .map(|(_, c)| idx(c).expect("invariant: header checked in open"))
            .collect();
        let period_idx = self.period.as_deref().and_then(idx);
        let unit_idx = self.unit.as_deref().and_then(idx);
        let mut rec = csv::StringRecord::new();
        let mut total = 0u64;
        let mut chunk = self.new_chunk(0);
        loop {
            let more = r.read_record(&mut rec).map_err(|e| fmt_err(d, e))?;
            if !more {
                break;
            }
            let line = rec.position().map(|p| p.line()).unwrap_or(total + 2);
            for (k, &ci) in node_idx.iter().enumerate() {
                let cell = rec.get(ci).unwrap_or("").trim();
                let v = parse_cell(cell).ok_or_else(|| DataError::NonNumeric {
                    path: d.clone(),
                    row: line,
                    column: self.nodes[k].1.clone(),
                    value: cell.to_string(),
                })?;
                chunk.values[k].push(v);
            }
            if let (Some(p), Some(pi)) = (&mut chunk.period, period_idx) {
                p.push(rec.get(pi).unwrap_or("").trim().to_string());
            }
            if let (Some(u), Some(ui)) = (&mut chunk.unit, unit_idx) {
                u.push(rec.get(ui).unwrap_or("").trim().to_string());
            }
            chunk.positions.push(line);
            chunk.n_rows += 1;
            total += 1;
            if chunk.n_rows == chunk_rows {
                f(&chunk)?;
                chunk = self.new_chunk(total);
            }
        }
        if chunk.n_rows > 0 {
            f(&chunk)?;
        }
        Ok(total)
    }

    fn parquet_chunks(
        &self,
        chunk_rows: usize,
        f: &mut dyn FnMut(&Chunk) -> Result<(), DataError>,
    ) -> Result<u64, DataError> {
        let d = &self.display;
        let file = File::open(&self.path).map_err(|e| io_err(d, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| fmt_err(d, e))?
            .with_batch_size(chunk_rows)
            .build()
            .map_err(|e| fmt_err(d, e))?;
        let mut total = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| fmt_err(d, e))?;
            let mut chunk = self.new_chunk(total);
            chunk.n_rows = batch.num_rows();
            chunk.positions = (total + 1..=total + batch.num_rows() as u64).collect();
            for (k, (_, col)) in self.nodes.iter().enumerate() {
                chunk.values[k] = numeric_column(&batch, col, d, total)?;
            }
            if let (Some(p), Some(name)) = (&mut chunk.period, &self.period) {
                *p = string_column(&batch, name, d)?;
            }
            if let (Some(u), Some(name)) = (&mut chunk.unit, &self.unit) {
                *u = string_column(&batch, name, d)?;
            }
            total += batch.num_rows() as u64;
            if chunk.n_rows > 0 {
                f(&chunk)?;
            }
        }
        Ok(total)
    }
}

/// A CSV cell as a number: decimal or scientific, `true`/`false` as 1/0.
/// Missing markers (empty, `NA`, `NaN`, `null`) become NaN, which the
/// caller reports as a missing observation; anything else is `None`.
fn parse_cell(cell: &str) -> Option<f64> {
    match cell {
        "" | "NA" | "na" | "N/A" | "NaN" | "nan" | "null" | "NULL" => return Some(f64::NAN),
        "true" | "TRUE" | "True" => return Some(1.0),
        "false" | "FALSE" | "False" => return Some(0.0),
        _ => {}
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        _ => None,
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str, path: &str) -> Result<&'a dyn Array, DataError> {
    batch
        .column_by_name(name)
        .map(|a| a.as_ref())
        .ok_or_else(|| DataError::MissingColumn {
            path: path.to_string(),
            column: name.to_string(),
            what: "a row group".into(),
            help: None,
        })
}

fn numeric_column(
    batch: &RecordBatch,
    name: &str,
    path: &str,
    first: u64,
) -> Result<Vec<f64>, DataError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    let a = column(batch, name, path)?;
    let mut out: Vec<f64> = match a.data_type() {
        DataType::Float64 => a.as_primitive::<Float64Type>().values().to_vec(),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DataType::Int64 => a
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        DataType::Int32 => a
            .as_primitive::<Int32Type>()
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DataType::Int16 => a
            .as_primitive::<Int16Type>()
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DataType::Int8 => a
            .as_primitive::<Int8Type>()
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DataType::UInt32 => a
            .as_primitive::<UInt32Type>()
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        DataType::UInt64 => a
            .as_primitive::<UInt64Type>()
            .values()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        DataType::Boolean => {
            let b = a.as_boolean();
            (0..b.len())
                .map(|i| f64::from(u8::from(b.value(i))))
                .collect()
        }
        DataType::Utf8 => {
            // Text columns are parsed like CSV cells, so a stray string
            // gets the same row/column diagnostic.
            let s = a.as_string::<i32>();
            let mut v = Vec::with_capacity(s.len());
            for i in 0..s.len() {
                let cell = if s.is_null(i) { "" } else { s.value(i).trim() };
                v.push(parse_cell(cell).ok_or_else(|| DataError::NonNumeric {
                    path: path.to_string(),
                    row: first + i as u64 + 1,
                    column: name.to_string(),
                    value: cell.to_string(),
                })?);
            }
            v
        }
        other => {
            return Err(DataError::ColumnType {
                path: path.to_string(),
                column: name.to_string(),
                ty: other.to_string(),
            });
        }
    };
    // Nulls become NaN: a missing observation, reported by the caller.
    if a.null_count() > 0 {
        for (i, v) in out.iter_mut().enumerate() {
            if a.is_null(i) {
                *v = f64::NAN;
            }
        }
    }
    Ok(out)
}

fn string_column(batch: &RecordBatch, name: &str, path: &str) -> Result<Vec<String>, DataError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    let a = column(batch, name, path)?;
    let n = a.len();
    let s = |i: usize, f: &dyn Fn(usize) -> String| if a.is_null(i) { String::new() } else { f(i) };
    Ok(match a.data_type() {
        DataType::Utf8 => {
            let x = a.as_string::<i32>();
            (0..n).map(|i| s(i, &|i| x.value(i).to_string())).collect()
        }
        DataType::LargeUtf8 => {
            let x = a.as_string::<i64>();
            (0..n).map(|i| s(i, &|i| x.value(i).to_string())).collect()
        }
        DataType::Int64 => {
            let x = a.as_primitive::<Int64Type>();
            (0..n).map(|i| s(i, &|i| x.value(i).to_string())).collect()
        }
        DataType::Int32 => {
            let x = a.as_primitive::<Int32Type>();
            (0..n).map(|i| s(i, &|i| x.value(i).to_string())).collect()
        }
        other => {
            return Err(DataError::ColumnType {
                path: path.to_string(),
                column: name.to_string(),
                ty: format!("{other} (period and unit columns must be text or integers)"),
            });
        }
    })
}

/// Checks that no observed cell in `chunk` is missing; the first missing
/// one is an error naming its row, column and node.
pub fn require_observed(
    src: &DataSource,
    model: &CausalModel,
    chunk: &Chunk,
) -> Result<(), DataError> {
    for (k, (node, col)) in src.nodes.iter().enumerate() {
        if let Some(i) = chunk.values[k].iter().position(|v| v.is_nan()) {
            return Err(DataError::MissingValue {
                path: src.display.clone(),
                row: chunk.positions[i],
                column: col.clone(),
                node: model.nodes[*node].name.clone(),
                value: "NaN".into(),
            });
        }
    }
    Ok(())
}
