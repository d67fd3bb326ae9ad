//! How Flight SQL answers leave: result streams under the slot, deadline and row limit, the
//! statuses errors become, `FlightInfo`s and one-batch answers, and the query log line.

use std::time::Instant;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Response, Status};

use super::BoxedStream;

/// Logs a query `caller` sent and counts it by outcome.
pub(super) fn log_query(caller: &str, sql: &str, error: Option<&Status>, started: Instant) {
    let outcome = match error {
        None => "ok",
        Some(s) if s.code() == tonic::Code::Internal => "error",
        Some(_) => "refused",
    };
    tracing::info!(
        token = %caller,
        sql = %sql,
        outcome,
        planning_ms = started.elapsed().as_millis() as u64,
        "flight sql: query"
    );
    metrics::counter!("auditlake_queries_total", "outcome" => outcome).increment(1);
}

/// `batches` cut at `max_rows` rows, failing at `deadline`, holding `permit` until the last one.
pub(super) fn bounded(
    batches: auditlake_engine::BatchStream,
    permit: OwnedSemaphorePermit,
    deadline: Option<tokio::time::Instant>,
    max_rows: Option<usize>,
) -> impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static {
    let left = max_rows.unwrap_or(usize::MAX);
    stream::unfold(
        (batches, Some(permit), left),
        move |(mut batches, permit, left)| async move {
            let permit = permit?;
            if left == 0 {
                return None;
            }
            let next = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline, batches.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let e = FlightError::Tonic(Box::new(timed_out()));
                        return Some((Err(e), (batches, None, 0)));
                    }
                },
                None => batches.next().await,
            };
            match next? {
                Ok(batch) => {
                    let batch = batch.slice(0, batch.num_rows().min(left));
                    let left = left - batch.num_rows();
                    Some((Ok(batch), (batches, Some(permit), left)))
                }
                Err(e) => {
                    let e = FlightError::Tonic(Box::new(engine_status(e)));
                    Some((Err(e), (batches, None, 0)))
                }
            }
        },
    )
}

pub(super) fn timed_out() -> Status {
    Status::deadline_exceeded("the query ran past the server's query time limit")
}

pub(super) fn engine_status(e: auditlake_engine::Error) -> Status {
    match e {
        auditlake_engine::Error::Timeout { .. } => timed_out(),
        e if e.is_user_error() => Status::invalid_argument(e.to_string()),
        e => {
            tracing::error!(error = %e, "flight sql: query failed");
            Status::internal(e.to_string())
        }
    }
}

/// A `FlightInfo` for a result with `schema`, fetched with `ticket` from this server.
pub(super) fn info(
    schema: &Schema,
    ticket: Ticket,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// One batch, streamed as Flight data.
pub(super) fn one_batch(
    schema: SchemaRef,
    batch: Result<RecordBatch, FlightError>,
) -> Response<BoxedStream<arrow_flight::FlightData>> {
    let data = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(stream::once(async move { batch }))
        .map_err(Status::from);
    Response::new(Box::pin(data))
}

pub(super) fn schema_ipc(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

pub(super) fn read_only_refusal() -> Status {
    Status::permission_denied("auditlake is read-only: only queries run")
}
