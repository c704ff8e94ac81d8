//! The query engine: a DataFusion session over one bucket.

use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use dlog_objects::Bucket;

use crate::QueryError;
use crate::table::{STORE_URL, StreamFunction};

/// Settings of a [`QueryEngine`]; the defaults suit a laptop.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The most memory a query may hold (hash tables, sorts, buffered batches). A query that
    /// needs more fails with [`QueryError::ResourcesExhausted`] instead of exhausting the host.
    pub memory_limit: usize,
    /// Parallel partitions per scan (default: the number of CPUs).
    pub target_partitions: Option<usize>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            memory_limit: 2 << 30,
            target_partitions: None,
        }
    }
}

/// Runs SQL over the streams of one bucket (see the crate docs).
pub struct QueryEngine {
    ctx: SessionContext,
    bucket: Bucket,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine")
            .field("bucket", &self.bucket.url())
            .finish()
    }
}

impl QueryEngine {
    pub fn new(bucket: Bucket, options: &QueryOptions) -> Result<QueryEngine, QueryError> {
        let mut config = SessionConfig::new().with_information_schema(false);
        if let Some(n) = options.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        let parquet = &mut config.options_mut().execution.parquet;
        // Late materialization: evaluate filters while decoding, so pages of the other
        // columns are decoded only for matching rows; the page index narrows reads further.
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
        parquet.enable_page_index = true;
        // No spilling to temporary files: a query runs in its memory or fails saying so.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(options.memory_limit, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let url = ObjectStoreUrl::parse(STORE_URL)?;
        ctx.register_object_store(url.as_ref(), Arc::clone(bucket.store()));
        ctx.register_udtf(
            "stream",
            Arc::new(StreamFunction {
                bucket: bucket.clone(),
            }),
        );
        Ok(QueryEngine { ctx, bucket })
    }

    /// Plans `sql` and starts running it; the rows arrive on the returned stream. Only
    /// queries: DDL, DML (`COPY … TO`, `INSERT`) and `SET` are refused.
    pub async fn run(&self, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
        if sql.trim().is_empty() {
            return Err(QueryError::Invalid("empty query".into()));
        }
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self.ctx.sql_with_options(sql, options).await?;
        Ok(df.execute_stream().await?)
    }
}
