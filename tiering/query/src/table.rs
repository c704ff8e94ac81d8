//! `stream('NAMESPACE/NAME')`: a stream's offloaded records as a table.
//!
//! The table function only names the stream; the manifest is read when the query runs
//! ([`StreamTable::scan`]), so a query always sees the latest committed manifest. The scan is
//! a Parquet scan of exactly the objects the manifest lists (an orphan in the bucket is never
//! read), with the query's filters handed to the Parquet reader for row-group and page
//! pruning, and an exact `offset >= start` filter on top when the manifest's first object
//! starts below the truncation point.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, ScalarValue, project_schema};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExecBuilder;
use dlog_api::StreamName;
use dlog_objects::{Bucket, Manifests};

use crate::QueryError;

/// The URL under which the engine registers the bucket's object store with DataFusion; object
/// paths under it are the bucket's store paths (prefix included).
pub(crate) const STORE_URL: &str = "dlog://bucket/";

/// The `stream(…)` table function of one bucket.
pub(crate) struct StreamFunction {
    pub(crate) bucket: Bucket,
}

impl fmt::Debug for StreamFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamFunction")
            .field("bucket", &self.bucket.url())
            .finish()
    }
}

impl TableFunctionImpl for StreamFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage =
            || invalid("stream() takes one argument, the stream's name: stream('NAMESPACE/NAME')");
        let [arg] = args.exprs() else {
            return Err(usage());
        };
        let name = match arg {
            Expr::Literal(ScalarValue::Utf8(Some(s)), _)
            | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
            | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => s,
            _ => return Err(usage()),
        };
        let name: StreamName = name
            .parse()
            .map_err(|e| invalid(format!("stream('{name}'): {e}")))?;
        Ok(Arc::new(StreamTable {
            bucket: self.bucket.clone(),
            name,
            schema: dlog_objects::segment::schema(),
        }))
    }
}

/// One stream's offloaded records.
pub(crate) struct StreamTable {
    bucket: Bucket,
    name: StreamName,
    schema: SchemaRef,
}

impl fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTable")
            .field("bucket", &self.bucket.url())
            .field("stream", &self.name.to_string())
            .finish()
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters go to the Parquet reader for pruning, and DataFusion applies them again on top
    /// (statistics and pages only narrow what is read).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let manifest = Manifests::new(self.bucket.clone())
            .latest(&self.name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(QueryError::from(e))))?
            .ok_or_else(|| {
                invalid(format!(
                    "stream {} has nothing offloaded in {} (no manifest)",
                    self.name,
                    self.bucket.url()
                ))
            })?;
        let start = manifest.start_offset;
        let objects: Vec<_> = manifest
            .objects
            .iter()
            .filter(|o| o.end_offset > start)
            .collect();
        let Some(first) = objects.first() else {
            return Ok(Arc::new(EmptyExec::new(project_schema(
                &self.schema,
                projection,
            )?)));
        };
        let truncated = first.first_offset < start;
        tracing::debug!(
            stream = %self.name,
            version = manifest.version,
            objects = objects.len(),
            start,
            "scan offloaded objects"
        );
        let urls = objects
            .iter()
            .map(|o| ListingTableUrl::parse(format!("{STORE_URL}{}", self.bucket.path(&o.key))))
            .collect::<Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(self.schema.clone());
        let table = ListingTable::try_new(config)?;
        if !truncated {
            return table.scan(state, projection, filters, limit).await;
        }
        // Part of the first object is below the start: scan every column, keep offsets at or
        // past the start, then project. The limit applies after the filter.
        let mut filters = filters.to_vec();
        let keep = col("offset").gt_eq(lit(start));
        filters.push(keep.clone());
        let scan = table.scan(state, None, &filters, None).await?;
        let df_schema = DFSchema::try_from(self.schema.as_ref().clone())?;
        let predicate = state.create_physical_expr(keep, &df_schema)?;
        let filter = FilterExecBuilder::new(predicate, scan)
            .apply_projection(projection.cloned())?
            .with_fetch(limit)
            .build()?;
        Ok(Arc::new(filter))
    }
}

fn invalid(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(QueryError::Invalid(msg.into())))
}
