//! Arrow Flight SQL (`serve --flight-listen`): ADBC's Flight SQL driver (pandas, polars, DuckDB
//! through ADBC), the Flight SQL JDBC driver (DBeaver) and `arrow-flight`'s own client query the
//! lake and get the engine's Arrow batches as they are produced, through the same read-only,
//! bounded, authenticated engine as `POST /v1/query`.
//!
//! What it answers: statement queries, prepared statements with parameters (`$1`, `$2`, ...,
//! bound with one row of values), `GetCatalogs`, `GetDbSchemas`, `GetTables` (with each table's
//! columns when asked), `GetTableTypes` and `GetSqlInfo`. Updates, ingestion, Substrait plans and
//! transactions are refused: auditlake is read-only.
//!
//! What every call promises:
//! - a call carries a token: `authorization: Bearer <token>` (the same tokens as HTTP), or a
//!   handshake with `Basic <name:token>` (ADBC's `username`/`password`) whose answer is that
//!   bearer; queries need the `query` scope; without tokens (a loopback server) anyone calls;
//! - only queries run: anything else (`DROP`, `COPY`, `SET`, `INSERT`, ...) is refused with
//!   `PERMISSION_DENIED` and a message naming the statement;
//! - each query holds one of the server's query slots (shared with HTTP and the PostgreSQL
//!   protocol) until its last batch is sent, runs under the server's time limit
//!   (`DEADLINE_EXCEEDED` past it) and returns at most its own row limit (raisable apart from
//!   HTTP's, as Flight streams rather than holding a result in memory); sorts and joins share the
//!   engine's memory pool;
//! - each query is logged with the token's name;
//! - a prepared statement belongs to the token that made it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginTransactionRequest, ActionBeginTransactionResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use auditlake_engine::{AccessLog, Planned, QueryEngine};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use futures::{Stream, TryStreamExt, stream};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::access::ACCESS_TABLE;
use crate::auth::{Auth, Principal};
use crate::connection::incoming;
use crate::read_only;
use crate::state::ApiState;

mod answers;
mod callers;
use answers::{bounded, engine_status, info, one_batch, read_only_refusal, schema_ipc, timed_out};
use callers::{Who, basic_credentials};

/// Prepared statements kept at most; making one more forgets the least recently used.
const MAX_PREPARED: usize = 1024;

type BoxedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Connections served at once, at most; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;

/// An Arrow Flight SQL server over the engine of an [`ApiState`].
pub struct FlightServer {
    service: FlightSql,
    /// A client that sends nothing for this long after connecting is dropped.
    first_byte_within: Duration,
}

impl FlightServer {
    /// A server answering with `state`'s engine, tokens, slots and time limit, returning at most
    /// `max_rows` rows a query (`None`: all).
    pub fn new(state: &ApiState, max_rows: Option<usize>) -> Self {
        Self {
            service: FlightSql {
                engine: Arc::clone(&state.query),
                admin_engine: state.access.as_ref().map(|(_, e)| Arc::clone(e)),
                access: state.access.as_ref().map(|(log, _)| Arc::clone(log)),
                catalog: state.query.session(),
                auth: Arc::clone(&state.auth),
                slots: Arc::clone(&state.query_slots),
                queue_wait: state.queue_wait,
                timeout: state.query.limits().timeout,
                max_rows,
                prepared: Mutex::new(Prepared::default()),
                sql_info: sql_info(),
            },
            first_byte_within: Duration::from_secs(10),
        }
    }

    /// Drops a client that sends nothing (or has not finished its TLS handshake) `within` after
    /// connecting; 10 s unless set.
    pub fn with_first_byte_within(mut self, within: Duration) -> Self {
        self.first_byte_within = within;
        self
    }

    /// Serves on `listener` until `shutdown` resolves; over TLS when `tls` is given (its ALPN
    /// must offer `h2`, which gRPC clients require).
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), tonic::transport::Error> {
        let service = FlightServiceServer::new(self.service);
        // Dead peers are found by HTTP/2 pings and dropped; one connection runs a bounded
        // number of calls at once (queries are bounded again by the query slots).
        let server = tonic::transport::Server::builder()
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .concurrency_limit_per_connection(32)
            .add_service(service);
        let within = self.first_byte_within;
        match tls {
            None => {
                let plain = |tcp| std::future::ready(Ok(tcp));
                let incoming = incoming(listener, MAX_CONNECTIONS, within, plain);
                server
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
            Some(acceptor) => {
                let tls = move |tcp| acceptor.accept(tcp);
                let incoming = incoming(listener, MAX_CONNECTIONS, within, tls);
                server
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        }
    }
}

/// What the server says of itself in `GetSqlInfo`.
fn sql_info() -> SqlInfoData {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "auditlake");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, arrow::ARROW_VERSION);
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, false);
    info.append(SqlInfo::SqlDdlTable, false);
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.build().expect("the server's SQL info is well-formed")
}

/// Prepared statements by handle.
#[derive(Default)]
struct Prepared {
    statements: HashMap<Vec<u8>, Statement>,
    next: u64,
}

/// A prepared statement: its SQL, who made it, and the parameters bound to it.
#[derive(Clone)]
struct Statement {
    owner: String,
    sql: String,
    parameters: Vec<ScalarValue>,
    used: Instant,
}

struct FlightSql {
    engine: Arc<QueryEngine>,
    /// A session over the engine's tables, whose catalog `GetTables` lists.
    /// The engine with `access_log`, for admins; `None`: calls are not recorded.
    admin_engine: Option<Arc<QueryEngine>>,
    /// Where each query is recorded.
    access: Option<Arc<AccessLog>>,
    catalog: SessionContext,
    auth: Arc<Auth>,
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    timeout: Option<Duration>,
    max_rows: Option<usize>,
    prepared: Mutex<Prepared>,
    sql_info: SqlInfoData,
}

impl FlightSql {
    /// Refuses `sql` unless it is one query.
    fn check(sql: &str) -> Result<(), Status> {
        let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if statements.len() != 1 {
            return Err(Status::invalid_argument(format!(
                "one statement a query, not {}",
                statements.len()
            )));
        }
        let refusal = match &statements[0] {
            DfStatement::Statement(statement) => read_only::refusal(statement),
            DfStatement::Explain(_) => None,
            other => Some(read_only::refused(&other.to_string())),
        };
        match refusal {
            Some(why) => Err(Status::permission_denied(why)),
            None => Ok(()),
        }
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        match tokio::time::timeout(self.queue_wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Status::resource_exhausted(
                "too many queries running; try again in a few seconds",
            )),
        }
    }

    /// Plans `sql` with `parameters` bound for `caller`, under the time limit.
    async fn plan(
        &self,
        caller: &Principal,
        sql: &str,
        parameters: &[ScalarValue],
    ) -> Result<Planned, Status> {
        Self::check(sql)?;
        let engine = self.engine_for(caller)?;
        if !caller.admin && engine.tables_read(sql).iter().any(|t| t == ACCESS_TABLE) {
            return Err(Status::permission_denied(format!(
                "{ACCESS_TABLE} is for admin tokens"
            )));
        }
        let plan = async {
            let planned = engine.plan(sql).await?;
            if parameters.is_empty() {
                Ok(planned)
            } else {
                planned.bind(parameters.to_vec())
            }
        };
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, plan)
                .await
                .map_err(|_| timed_out())?,
            None => plan.await,
        }
        .map_err(engine_status)
    }

    /// A `FlightInfo` for the result of `sql` with `parameters`, fetched with `ticket`.
    /// A refusal is logged here, where a client first sends its SQL.
    async fn info_for(
        &self,
        caller: &Who,
        sql: &str,
        parameters: &[ScalarValue],
        ticket: Ticket,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let _slot = self.slot().await?;
        let started = Instant::now();
        let planned = self.plan(caller, sql, parameters).await;
        if let Err(e) = &planned {
            self.finished(caller, sql, Some(e), started);
        }
        info(&planned?.schema(), ticket, descriptor)
    }

    /// Runs `sql` with `parameters` for `caller` and streams its batches: under a query slot
    /// until the last one, the time limit and the row limit.
    async fn run(
        &self,
        caller: &Who,
        sql: &str,
        parameters: &[ScalarValue],
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        let permit = self.slot().await?;
        let started = Instant::now();
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let run = async {
            let planned = self.plan(caller, sql, parameters).await?;
            let schema = planned.schema();
            let batches = planned.execute().await.map_err(engine_status)?;
            Ok::<_, Status>((schema, batches))
        };
        let ran = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, run)
                .await
                .unwrap_or_else(|_| Err(timed_out())),
            None => run.await,
        };
        self.finished(caller, sql, ran.as_ref().err(), started);
        let (schema, batches) = ran?;
        let batches = bounded(batches, permit, deadline, self.max_rows);
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(data)))
    }

    /// The `FlightInfo` of a catalog command (`GetTables`, ...): fetched with the command
    /// itself as the ticket, answered with `schema`.
    fn command_info(
        &self,
        request: Request<FlightDescriptor>,
        command: Vec<u8>,
        schema: &Schema,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        info(schema, Ticket::new(command), request.into_inner())
    }

    /// The prepared statement `handle` of `caller`.
    fn prepared(&self, caller: &str, handle: &[u8]) -> Result<Statement, Status> {
        let mut prepared = self.prepared.lock().expect("prepared statements");
        match prepared.statements.get_mut(handle) {
            Some(statement) if statement.owner == caller => {
                statement.used = Instant::now();
                Ok(statement.clone())
            }
            _ => Err(Status::not_found(
                "no such prepared statement (closed, forgotten, or another token's)",
            )),
        }
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<BoxedStream<HandshakeResponse>>, Status> {
        let caller = self.caller(&request)?;
        tracing::info!(token = %caller.name, "flight sql: login");
        let mut response: Response<BoxedStream<HandshakeResponse>> =
            Response::new(Box::pin(stream::iter([Ok(HandshakeResponse::default())])));
        // The bearer the client sends from now on: the token the credentials carried.
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = match header.split_once(' ') {
            Some((scheme, basic)) if scheme.eq_ignore_ascii_case("basic") => {
                basic_credentials(basic).map(|(_, token)| token)
            }
            Some((_, bearer)) => Some(bearer.trim().to_string()),
            None => None,
        };
        if let Some(token) = token
            && let Ok(value) = MetadataValue::try_from(format!("Bearer {token}"))
        {
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request)?;
        // The ticket carries the SQL: any server behind a balancer can run it, and it is
        // checked again when run.
        let ticket = TicketStatementQuery {
            statement_handle: query.query.clone().into_bytes().into(),
        };
        let ticket = Ticket::new(ticket.as_any().encode_to_vec());
        self.info_for(&caller, &query.query, &[], ticket, request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        let caller = self.caller(&request)?;
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the ticket is not this server's"))?;
        self.run(&caller, sql, &[]).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request)?;
        let (schema, parameters) = {
            let _slot = self.slot().await?;
            let started = Instant::now();
            let planned = self
                .plan(&caller, &query.query, &[])
                .await
                .and_then(|p| Ok((p.schema(), p.parameters().map_err(engine_status)?)));
            if let Err(e) = &planned {
                self.finished(&caller, &query.query, Some(e), started);
            }
            planned?
        };
        let parameters = Schema::new(
            parameters
                .into_iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("${}", i + 1), t.unwrap_or(DataType::Null), true))
                .collect::<Vec<_>>(),
        );
        let handle = {
            let mut prepared = self.prepared.lock().expect("prepared statements");
            if prepared.statements.len() >= MAX_PREPARED
                && let Some(oldest) = prepared
                    .statements
                    .iter()
                    .min_by_key(|(_, s)| s.used)
                    .map(|(h, _)| h.clone())
            {
                prepared.statements.remove(&oldest);
            }
            prepared.next += 1;
            let handle = format!("{}:{}", caller.name, prepared.next).into_bytes();
            prepared.statements.insert(
                handle.clone(),
                Statement {
                    owner: caller.name.clone(),
                    sql: query.query,
                    parameters: Vec::new(),
                    used: Instant::now(),
                },
            );
            handle
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: schema_ipc(&schema)?,
            parameter_schema: schema_ipc(&parameters)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request)?;
        self.prepared(&caller.name, &query.prepared_statement_handle)?;
        let data = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data)
                .try_collect()
                .await
                .map_err(Status::from)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "one row of parameters at a time, not {rows}"
            )));
        }
        let mut parameters = Vec::new();
        if let Some(batch) = batches.iter().find(|b| b.num_rows() == 1) {
            for column in batch.columns() {
                parameters.push(
                    ScalarValue::try_from_array(column, 0)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?,
                );
            }
        }
        let mut prepared = self.prepared.lock().expect("prepared statements");
        if let Some(statement) = prepared
            .statements
            .get_mut(query.prepared_statement_handle.as_ref())
        {
            statement.parameters = parameters;
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request)?;
        let statement = self.prepared(&caller.name, &query.prepared_statement_handle)?;
        let ticket = Ticket::new(query.as_any().encode_to_vec());
        self.info_for(
            &caller,
            &statement.sql,
            &statement.parameters,
            ticket,
            request.into_inner(),
        )
        .await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        let caller = self.caller(&request)?;
        let statement = self.prepared(&caller.name, &query.prepared_statement_handle)?;
        self.run(&caller, &statement.sql, &statement.parameters)
            .await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(&request)?;
        self.prepared(&caller.name, &query.prepared_statement_handle)?;
        self.prepared
            .lock()
            .expect("prepared statements")
            .statements
            .remove(query.prepared_statement_handle.as_ref());
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        self.command_info(request, command, &query.into_builder().schema())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        let catalog = self.catalog_for(&self.principal(&request)?)?;
        let mut builder = query.into_builder();
        for catalog in catalog.catalog_names() {
            builder.append(catalog);
        }
        Ok(one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        self.command_info(request, command, &query.into_builder().schema())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        let catalog = self.catalog_for(&self.principal(&request)?)?;
        let mut builder = query.into_builder();
        for catalog_name in catalog.catalog_names() {
            let Some(catalog) = catalog.catalog(&catalog_name) else {
                continue;
            };
            for schema in catalog.schema_names() {
                builder.append(&catalog_name, schema);
            }
        }
        Ok(one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        self.command_info(request, command, &query.into_builder().schema())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        let catalog = self.catalog_for(&self.principal(&request)?)?;
        let mut builder = query.into_builder();
        for catalog_name in catalog.catalog_names() {
            let Some(catalog) = catalog.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    let Ok(Some(table)) = schema.table(&table_name).await else {
                        continue;
                    };
                    let columns = auditlake_engine::stored_types(&table.schema());
                    builder
                        .append(
                            &catalog_name,
                            &schema_name,
                            &table_name,
                            table_type(table.table_type()),
                            &columns,
                        )
                        .map_err(|e| Status::internal(e.to_string()))?;
                }
            }
        }
        Ok(one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        self.command_info(request, command, &query.into_builder().schema())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        for kind in ["TABLE", "VIEW", "LOCAL TEMPORARY"] {
            builder.append(kind);
        }
        Ok(one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let command = query.as_any().encode_to_vec();
        self.command_info(
            request,
            command,
            &query.into_builder(&self.sql_info).schema(),
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<BoxedStream<arrow_flight::FlightData>>, Status> {
        self.caller(&request)?;
        let builder = query.into_builder(&self.sql_info);
        Ok(one_batch(builder.schema(), builder.build()))
    }

    async fn do_put_statement_update(
        &self,
        query: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request)?;
        tracing::info!(token = %caller.name, sql = %query.query, outcome = "refused", "flight sql: update");
        Err(Self::check(&query.query)
            .err()
            .unwrap_or_else(read_only_refusal))
    }

    async fn do_put_statement_ingest(
        &self,
        _query: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(&request)?;
        Err(Status::permission_denied(
            "auditlake is read-only: events arrive through its ingest endpoints, not Flight",
        ))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(&request)?;
        Err(read_only_refusal())
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.caller(&request)?;
        Err(Status::unimplemented(
            "auditlake runs SQL, not Substrait plans",
        ))
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        Err(Status::unimplemented(
            "auditlake runs SQL, not Substrait plans",
        ))
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        self.caller(&request)?;
        Err(Status::unimplemented(
            "auditlake is read-only and has no transactions",
        ))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Flight SQL's name for a DataFusion table type.
fn table_type(kind: datafusion::datasource::TableType) -> &'static str {
    use datafusion::datasource::TableType;
    match kind {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
