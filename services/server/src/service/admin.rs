//! Administrative operations, the same for the client protocol's `admin` op and the HTTP API.

use dlog_api::admin::{AdminRequest, AdminResponse, OffloadedSegment, ScrubResult};
use dlog_log::LogError;
use tracing::info;

use super::Service;
use super::ownership::NotMine;

/// Runs one admin request.
pub async fn execute(svc: &Service, req: AdminRequest) -> Result<AdminResponse, LogError> {
    svc.metrics.admin_requests.inc();
    let log = &svc.log;
    Ok(match req {
        AdminRequest::CreateStream { stream, policy } => {
            let policy = policy.unwrap_or_else(|| svc.opts.default_policy.clone());
            let info = log.create_stream(&stream, policy).await?;
            AdminResponse::Stream { info }
        }
        AdminRequest::DescribeStream { stream } => AdminResponse::Stream {
            info: describe(svc, &stream).await?,
        },
        AdminRequest::ListStreams { namespace } => AdminResponse::Streams {
            streams: log.list_streams(namespace.as_deref()).await?,
        },
        AdminRequest::DeleteStream { stream } => {
            if let Some(w) = svc.ownership.local_writer(&stream) {
                svc.ownership.drop_writer(&stream, w.epoch()).await;
            }
            log.delete_stream(&stream).await?;
            if let Some(off) = &svc.offloader
                && let Err(e) = off.delete_stream(&stream).await
            {
                // The stream is gone; what is left in the bucket is the scrubber's to find.
                tracing::warn!(stream = %stream, error = %e, "delete the stream's objects");
            }
            info!(stream = %stream, "stream deleted by request");
            AdminResponse::Done
        }
        AdminRequest::UpdatePolicy { stream, policy } => {
            log.update_policy(&stream, policy).await?;
            AdminResponse::Stream {
                info: describe(svc, &stream).await?,
            }
        }
        AdminRequest::Truncate { stream, offset } => {
            let start_offset = log.truncate(&stream, offset).await?;
            svc.trim_objects(&stream).await;
            AdminResponse::Truncated { start_offset }
        }
        AdminRequest::CommitSubscription {
            stream,
            subscription,
            offset,
            force,
        } => {
            log.commit_subscription(&stream, &subscription, offset, force)
                .await?;
            AdminResponse::Done
        }
        AdminRequest::FetchSubscription {
            stream,
            subscription,
        } => AdminResponse::Subscription {
            offset: log.fetch_subscription(&stream, &subscription).await?,
        },
        AdminRequest::EndStream { stream } => {
            let w = match svc.ownership.writer(&stream).await {
                Ok(w) => w,
                Err(NotMine::Log(e)) => return Err(e),
                Err(NotMine::Owner(owner)) => {
                    return Err(LogError::Unavailable(format!(
                        "{stream} is owned by {}; end it there",
                        owner.unwrap_or_else(|| "another node".into())
                    )));
                }
            };
            let end = w.end_stream().await?;
            svc.ownership.drop_writer(&stream, w.epoch()).await;
            AdminResponse::Ended { end_offset: end }
        }
        AdminRequest::Offload { stream, seal } => offload(svc, &stream, seal).await?,
        AdminRequest::Scrub {
            stream,
            repair,
            min_age_ms,
        } => {
            let off = offloader(svc)?;
            svc.log.load(&stream).await?; // a clear "no such stream" first
            let min_age = min_age_ms.unwrap_or(DEFAULT_SCRUB_MIN_AGE_MS);
            let min_age = i64::try_from(min_age).unwrap_or(i64::MAX);
            let r = dlog_offloader::scrub(&svc.log, off.bucket(), &stream, repair, min_age).await?;
            info!(
                stream = %stream,
                orphans = r.orphans.len(),
                deleted = r.deleted.len(),
                missing = r.missing.len(),
                "scrubbed"
            );
            AdminResponse::Scrubbed {
                found: ScrubResult {
                    orphans: r.orphans,
                    deleted: r.deleted,
                    missing: r.missing,
                },
            }
        }
    })
}

/// Orphans younger than this are left alone by a repair unless the request says otherwise: an
/// offload in another process may be about to commit them.
const DEFAULT_SCRUB_MIN_AGE_MS: u64 = 15 * 60 * 1000;

/// The node's offloader, or the error that says it has none.
fn offloader(svc: &Service) -> Result<&dlog_offloader::Offloader, LogError> {
    svc.offloader.as_ref().ok_or_else(|| {
        LogError::BadRequest(
            "this node has no object store (dlogd standalone --object-store, or [objects] in \
             the server config)"
                .into(),
        )
    })
}

/// Offloads a stream's sealed segments now (after sealing the open one, with `seal`).
async fn offload(
    svc: &Service,
    stream: &dlog_api::StreamName,
    seal: bool,
) -> Result<AdminResponse, LogError> {
    let off = offloader(svc)?;
    svc.log.load(stream).await?; // a clear "no such stream" first
    if seal {
        let w = match svc.ownership.writer(stream).await {
            Ok(w) => w,
            Err(NotMine::Log(e)) => return Err(e),
            Err(NotMine::Owner(owner)) => {
                return Err(LogError::Unavailable(format!(
                    "{stream} is owned by {}; offload --seal there",
                    owner.unwrap_or_else(|| "another node".into())
                )));
            }
        };
        let end = w.roll().await?;
        info!(stream = %stream, end, "open segment sealed for an offload");
    }
    let done = off.offload_stream(stream, |_| true).await?;
    let reclaimed = off.reclaim(stream).await?;
    svc.metrics.offloaded_segments.add(done.len() as u64);
    svc.metrics
        .offloaded_bytes
        .add(done.iter().map(|d| d.size).sum::<u64>());
    Ok(AdminResponse::Offloaded {
        segments: done
            .into_iter()
            .map(|d| OffloadedSegment {
                seq: d.seq,
                segments: d.segments,
                key: d.key,
                first_offset: d.first_offset,
                end_offset: d.end_offset,
                bytes: d.size,
            })
            .collect(),
        reclaimed,
    })
}

/// A stream's description, with the owner and, on the owner, the acknowledged end.
pub async fn describe(
    svc: &Service,
    stream: &dlog_api::StreamName,
) -> Result<dlog_api::stream::StreamInfo, LogError> {
    let mut info = svc.log.describe(stream).await?;
    info.owner = svc.ownership.owner(stream).await?.map(|o| o.address);
    if let Some(w) = svc.ownership.local_writer(stream) {
        info.end_offset = info.end_offset.max(*w.acked_end().borrow());
    }
    Ok(info)
}
