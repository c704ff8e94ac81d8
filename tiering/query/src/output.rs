//! Printing a query's rows: an aligned table, JSON lines or CSV.
//!
//! Binary columns (`key`, `payload`) print as text when every value in the batch is UTF-8 and
//! as hex otherwise. JSON and CSV stream batch by batch; the table is aligned over all rows,
//! so it holds at most `max_table_rows` and says when it stopped there.

use std::io::Write;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::arrow::{csv, json};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::QueryError;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned table with a header, like `psql` or `duckdb`.
    Table,
    /// One JSON object per row.
    Json,
    /// CSV with a header line.
    Csv,
}

/// What [`print_batches`] printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printed {
    pub rows: u64,
    /// The table stopped at `max_table_rows` (more rows were not printed).
    pub truncated: bool,
}

/// Prints every row of `stream` to `out` in `format`.
pub async fn print_batches(
    mut stream: SendableRecordBatchStream,
    format: OutputFormat,
    out: &mut (dyn Write + Send),
    max_table_rows: usize,
) -> Result<Printed, QueryError> {
    let mut rows = 0u64;
    match format {
        OutputFormat::Table => {
            let mut kept = Vec::new();
            let mut kept_rows = 0usize;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let room = max_table_rows - kept_rows;
                if batch.num_rows() > room {
                    truncated = true;
                    if room > 0 {
                        kept.push(readable(&batch.slice(0, room))?);
                        rows += room as u64;
                    }
                    break;
                }
                kept_rows += batch.num_rows();
                rows += batch.num_rows() as u64;
                kept.push(readable(&batch)?);
            }
            if kept.is_empty() {
                kept.push(RecordBatch::new_empty(stream.schema()));
            }
            let table = pretty_format_batches(&kept)?;
            writeln!(out, "{table}").map_err(output_error)?;
            Ok(Printed { rows, truncated })
        }
        OutputFormat::Json => {
            let mut w = json::LineDelimitedWriter::new(out);
            while let Some(batch) = stream.next().await {
                let batch = readable(&batch?)?;
                rows += batch.num_rows() as u64;
                w.write(&batch)?;
            }
            w.finish()?;
            Ok(Printed {
                rows,
                truncated: false,
            })
        }
        OutputFormat::Csv => {
            let mut w = csv::WriterBuilder::new().with_header(true).build(out);
            let mut wrote = false;
            while let Some(batch) = stream.next().await {
                let batch = readable(&batch?)?;
                rows += batch.num_rows() as u64;
                w.write(&batch)?;
                wrote = true;
            }
            if !wrote {
                // A header even for no rows, so the output is still a valid CSV of the schema.
                w.write(&RecordBatch::new_empty(stream.schema()))?;
            }
            Ok(Printed {
                rows,
                truncated: false,
            })
        }
    }
}

/// The batch with each binary column as text when all its values are UTF-8.
fn readable(batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| is_binary(f.data_type())) {
        return Ok(batch.clone());
    }
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let text = is_binary(f.data_type())
            .then(|| cast_with_options(c, &DataType::Utf8, &strict).ok())
            .flatten();
        match text {
            Some(t) => {
                fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
                columns.push(t);
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

fn output_error(e: std::io::Error) -> QueryError {
    QueryError::Output(e)
}
