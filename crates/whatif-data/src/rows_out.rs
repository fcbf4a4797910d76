//! Per-row counterfactuals (`--rows-out`) as CSV or Parquet, streamed: the
//! CSV writer writes each row as it comes, the Parquet writer buffers one
//! row group of [`PARQUET_GROUP_ROWS`] rows. Writers take any `Write`, so
//! the caller decides where (a temporary file renamed into place).

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use crate::DataError;
use crate::backtest::RowSink;

/// Rows per Parquet row group.
pub const PARQUET_GROUP_ROWS: usize = 65_536;

fn err(path: &str, e: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// Writes rows as CSV.
pub struct CsvSink<W: Write> {
    w: csv::Writer<W>,
    path: String,
}

impl<W: Write> std::fmt::Debug for CsvSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvSink").field("path", &self.path).finish()
    }
}

impl<W: Write> CsvSink<W> {
    pub fn new(w: W, path: &str) -> Self {
        CsvSink {
            w: csv::Writer::from_writer(w),
            path: path.to_string(),
        }
    }
}

impl<W: Write> RowSink for CsvSink<W> {
    fn header(&mut self, columns: &[String]) -> Result<(), DataError> {
        self.w.write_record(columns).map_err(|e| err(&self.path, e))
    }
    fn row(
        &mut self,
        position: u64,
        unit: &str,
        period: &str,
        values: &[f64],
    ) -> Result<(), DataError> {
        let mut rec = vec![position.to_string(), unit.to_string(), period.to_string()];
        // `{}` prints the shortest text that parses back to the same f64.
        rec.extend(values.iter().map(|v| format!("{v}")));
        self.w.write_record(&rec).map_err(|e| err(&self.path, e))
    }
    fn finish(&mut self) -> Result<(), DataError> {
        self.w.flush().map_err(|e| err(&self.path, e))
    }
}

/// Writes rows as Parquet (columns `row` u64, `unit`/`period` text, the
/// rest f64).
pub struct ParquetSink<W: Write + Send> {
    w: Option<W>,
    writer: Option<parquet::arrow::ArrowWriter<W>>,
    schema: Option<Arc<Schema>>,
    path: String,
    pos: Vec<u64>,
    unit: Vec<String>,
    period: Vec<String>,
    vals: Vec<Vec<f64>>,
}

impl<W: Write + Send> std::fmt::Debug for ParquetSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("path", &self.path)
            .finish()
    }
}

impl<W: Write + Send> ParquetSink<W> {
    pub fn new(w: W, path: &str) -> Self {
        ParquetSink {
            w: Some(w),
            writer: None,
            schema: None,
            path: path.to_string(),
            pos: vec![],
            unit: vec![],
            period: vec![],
            vals: vec![],
        }
    }

    fn flush_group(&mut self) -> Result<(), DataError> {
        if self.pos.is_empty() {
            return Ok(());
        }
        let schema = self.schema.clone().expect("invariant: header before rows");
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(&mut self.pos))),
            Arc::new(StringArray::from(std::mem::take(&mut self.unit))),
            Arc::new(StringArray::from(std::mem::take(&mut self.period))),
        ];
        for v in &mut self.vals {
            cols.push(Arc::new(Float64Array::from(std::mem::take(v))));
        }
        let batch = RecordBatch::try_new(schema, cols).map_err(|e| err(&self.path, e))?;
        self.writer
            .as_mut()
            .expect("invariant: header before rows")
            .write(&batch)
            .map_err(|e| err(&self.path, e))
    }
}

impl<W: Write + Send> RowSink for ParquetSink<W> {
    fn header(&mut self, columns: &[String]) -> Result<(), DataError> {
        let mut fields = vec![
            Field::new("row", DataType::UInt64, false),
            Field::new("unit", DataType::Utf8, false),
            Field::new("period", DataType::Utf8, false),
        ];
        for c in &columns[3..] {
            fields.push(Field::new(c, DataType::Float64, false));
        }
        let schema = Arc::new(Schema::new(fields));
        self.vals = vec![Vec::new(); columns.len() - 3];
        let w = self.w.take().expect("invariant: header once");
        self.writer = Some(
            parquet::arrow::ArrowWriter::try_new(w, schema.clone(), None)
                .map_err(|e| err(&self.path, e))?,
        );
        self.schema = Some(schema);
        Ok(())
    }
    fn row(
        &mut self,
        position: u64,
        unit: &str,
        period: &str,
        values: &[f64],
    ) -> Result<(), DataError> {
        self.pos.push(position);
        self.unit.push(unit.to_string());
        self.period.push(period.to_string());
        for (c, v) in self.vals.iter_mut().zip(values) {
            c.push(*v);
        }
        if self.pos.len() >= PARQUET_GROUP_ROWS {
            self.flush_group()?;
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<(), DataError> {
        self.flush_group()?;
        if let Some(w) = self.writer.take() {
            w.close().map_err(|e| err(&self.path, e))?;
        }
        Ok(())
    }
}
