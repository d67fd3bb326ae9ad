//! The PostgreSQL wire protocol (`serve --pg-listen`): psql, Grafana's PostgreSQL data source,
//! DBeaver, psycopg and pandas query the lake as they would a PostgreSQL database, through the
//! same read-only, bounded, authenticated engine as `POST /v1/query`.
//!
//! `datafusion-postgres` speaks the protocol (simple and extended queries, types) and provides
//! the `pg_catalog` tables and functions that clients' catalog queries (psql's `\d`, Grafana's
//! and DBeaver's table lists) read. This module adds what every query path of the server
//! promises:
//! - a login is a token: user name = the token's name, password = the token, which must grant
//!   the `query` scope (any database name); without tokens (a loopback server) anyone logs in;
//! - only queries run: `SELECT`, `WITH`, `VALUES`, `EXPLAIN`, `SHOW` and the transaction
//!   statements clients send around them (`BEGIN`, `COMMIT`, `ROLLBACK`, `DEALLOCATE`, which
//!   change no data);
//!   anything else (`SET`, `COPY`, `DROP`, `INSERT`, `CREATE`, ...) is refused with SQLSTATE
//!   25006 and a message the client shows;
//! - each statement takes one of the server's query slots (shared with HTTP) until its last row
//!   is sent, runs under the server's time limit (SQLSTATE 57014 when it passes) and returns at
//!   most the server's row limit; sorts and joins share the engine's memory pool;
//! - each statement is logged with the token's name.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::{DfSessionService, Parser};
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_USER, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::access::ACCESS_TABLE;
use crate::auth::{Auth, Principal, Scope};
use crate::error::ApiError;
use crate::state::ApiState;
use auditlake_engine::{Access, AccessLog, QueryEngine};

/// Connections open at once, at most; more are closed at once (each holds a task and buffers,
/// queries themselves are bounded by the query slots).
const MAX_CONNECTIONS: usize = 256;

/// Where a connection's token name is kept for its statements' log lines.
const METADATA_TOKEN: &str = "auditlake.token";

/// A PostgreSQL protocol server over the engine of an [`ApiState`].
pub struct PgServer {
    sessions: Arc<Sessions>,
    auth: Arc<Auth>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    /// A connection not logged in this long after it was accepted is closed.
    login_within: Duration,
}

/// The session services connections run their statements in: one for every token that sees
/// every cluster, and one made at login for a token limited to some clusters.
struct Sessions {
    open: Arc<Guarded>,
    /// With `access_log`, for `admin` tokens (the open one when calls are not recorded).
    admin: Arc<Guarded>,
    /// Over no cluster's rows, for a connection that has not logged in.
    closed: Arc<Guarded>,
    engine: Arc<QueryEngine>,
    /// For the services of cluster-limited tokens.
    state: ApiState,
}

impl Sessions {
    /// A session service over `engine` with `pg_catalog`, under the server's slots and limits.
    fn guarded(
        engine: &Arc<QueryEngine>,
        admin: bool,
        state: &ApiState,
    ) -> Result<Guarded, ApiError> {
        let session = engine.session();
        setup_pg_catalog(&session, "datafusion", EmptyContextProvider)
            .map_err(|e| ApiError::internal(*e))?;
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnly),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let limits = engine.limits();
        Ok(Guarded {
            inner: DfSessionService::new_with_hooks(Arc::new(session), hooks),
            engine: Arc::clone(engine),
            admin,
            access: state.access.as_ref().map(|(log, _)| Arc::clone(log)),
            slots: Arc::clone(&state.query_slots),
            queue_wait: state.queue_wait,
            timeout: limits.timeout,
            max_rows: limits.max_rows,
        })
    }

    /// The session service `caller`'s statements run in.
    fn for_caller(&self, caller: &Principal) -> PgWireResult<Arc<Guarded>> {
        let Some(clusters) = &caller.clusters else {
            return Ok(Arc::clone(if caller.admin {
                &self.admin
            } else {
                &self.open
            }));
        };
        self.engine
            .limited_to(Arc::clone(clusters))
            .map_err(ApiError::from)
            .and_then(|engine| Self::guarded(&Arc::new(engine), false, &self.state))
            .map(Arc::new)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))
    }
}

impl PgServer {
    /// A server answering with `state`'s engine, tokens, slots and limits; over TLS when `tls`
    /// is given (clients ask for it with `sslmode=require`).
    pub fn new(
        state: &ApiState,
        tls: Option<pgwire::tokio::TlsAcceptor>,
    ) -> Result<Self, ApiError> {
        let open = Arc::new(Sessions::guarded(&state.query, false, state)?);
        let admin = match &state.access {
            Some((_, engine)) => Arc::new(Sessions::guarded(engine, true, state)?),
            None => Arc::clone(&open),
        };
        // No cluster is named ` ` (names have no spaces).
        let none = Arc::new(state.query.limited_to(Arc::from([" ".to_string()]))?);
        let closed = Sessions::guarded(&none, false, state)?;
        Ok(Self {
            sessions: Arc::new(Sessions {
                open,
                admin,
                closed: Arc::new(closed),
                engine: Arc::clone(&state.query),
                state: state.clone(),
            }),
            auth: Arc::clone(&state.auth),
            tls,
            login_within: Duration::from_secs(10),
        })
    }

    /// Closes a connection that has not logged in `within` after it was accepted (a client
    /// that connects and sends nothing, or stalls in TLS or the startup); 10 s unless set.
    pub fn with_login_within(mut self, within: Duration) -> Self {
        self.login_within = within;
        self
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "postgres protocol: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
                tracing::warn!(%peer, "postgres protocol: too many connections, closing one");
                continue;
            };
            let connection = Arc::new(Connection {
                sessions: Arc::clone(&self.sessions),
                chosen: OnceLock::new(),
            });
            let watched = Arc::clone(&connection);
            let handlers = Arc::new(Handlers {
                login: Arc::new(TokenLogin {
                    auth: Arc::clone(&self.auth),
                    connection: Arc::clone(&connection),
                }),
                connection,
            });
            let tls = self.tls.clone();
            let session = tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                    tracing::debug!(%peer, error = %e, "postgres protocol: connection ended");
                }
                drop(permit);
            });
            // Ending the task drops the socket and the permit.
            let (session, within) = (session.abort_handle(), self.login_within);
            tokio::spawn(async move {
                tokio::time::sleep(within).await;
                if watched.chosen.get().is_none() && !session.is_finished() {
                    tracing::debug!(%peer, "postgres protocol: no login in time, closing");
                    session.abort();
                }
            });
        }
    }
}

/// One connection's handlers.
struct Handlers {
    connection: Arc<Connection>,
    login: Arc<TokenLogin>,
}

/// One connection: its statements run in the session service its login chose.
struct Connection {
    sessions: Arc<Sessions>,
    chosen: OnceLock<Arc<Guarded>>,
}

impl Connection {
    /// The session service of the login; before one (pgwire reads no statement then), none:
    /// the service of a server's most limited token is not known, so nothing is.
    fn guarded(&self) -> PgWireResult<&Arc<Guarded>> {
        self.chosen.get().ok_or_else(|| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "log in first".into(),
            )))
        })
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.connection)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.connection)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.login)
    }
}

/// Password login where the password is a token and the user its name.
struct TokenLogin {
    auth: Arc<Auth>,
    connection: Arc<Connection>,
}

impl TokenLogin {
    async fn accept<C>(&self, client: &mut C, caller: Principal) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let guarded = self.connection.sessions.for_caller(&caller)?;
        // A second login on one connection keeps the first's session service.
        let _ = self.connection.chosen.set(guarded);
        client
            .metadata_mut()
            .insert(METADATA_TOKEN.to_string(), caller.name);
        let (pid, secret) = RandomPidSecretKeyGenerator::default().generate(client);
        client.set_pid_and_secret_key(pid, secret);
        finish_authentication(client, &DefaultServerParameterProvider::default()).await
    }
}

#[async_trait]
impl StartupHandler for TokenLogin {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.is_enabled() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    let anonymous = self
                        .auth
                        .check_token("", Scope::Query)
                        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                    self.accept(client, anonymous).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                match self.auth.check_token(&password.password, Scope::Query) {
                    Ok(principal) if principal.name == user => {
                        tracing::info!(token = %user, peer = %client.socket_addr(), "postgres protocol: login");
                        self.accept(client, principal).await?;
                    }
                    Err(ApiError::Forbidden(_)) => {
                        tracing::warn!(user = %user, peer = %client.socket_addr(), "postgres protocol: token without the query scope");
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".into(),
                            "28000".into(),
                            format!("token {user:?} lacks the query scope"),
                        ))));
                    }
                    _ => {
                        tracing::warn!(user = %user, peer = %client.socket_addr(), "postgres protocol: login refused");
                        return Err(PgWireError::InvalidPassword(user));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Refuses every statement but queries, before it is planned.
struct ReadOnly;

impl ReadOnly {
    fn check(statement: &Statement) -> PgWireResult<()> {
        match crate::read_only::refusal(statement) {
            None => Ok(()),
            Some(why) => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "25006".into(),
                why,
            )))),
        }
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Drivers free the statements they prepared (psycopg sends `DEALLOCATE ALL` after a
        // rollback): forgetting a prepared statement changes no data.
        if let Statement::Deallocate { name, .. } = statement {
            if !name.value.eq_ignore_ascii_case("all") {
                client.portal_store().rm_statement(&name.value);
            }
            return Some(Ok(Response::Execution(Tag::new("DEALLOCATE"))));
        }
        Self::check(statement).err().map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Self::check(statement).err().map(Err)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

/// `datafusion-postgres`'s session service under the server's slots and limits.
struct Guarded {
    inner: DfSessionService,
    /// The engine its session is of, and whether its caller is an admin (who alone may read
    /// `access_log`).
    engine: Arc<QueryEngine>,
    admin: bool,
    /// Where each statement is recorded.
    access: Option<Arc<AccessLog>>,
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    timeout: Option<Duration>,
    max_rows: Option<usize>,
}

impl Guarded {
    async fn slot(&self) -> PgWireResult<Arc<OwnedSemaphorePermit>> {
        match tokio::time::timeout(self.queue_wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Arc::new(permit)),
            _ => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "53300".into(),
                "too many queries running; try again in a few seconds".into(),
            )))),
        }
    }

    /// Runs `run` (planning, and for simple queries each statement's start) under the time
    /// limit, and gives each result stream the slot, the rest of the time and the row limit.
    async fn bounded<T>(
        &self,
        (token, source): (&str, &str),
        sql: &str,
        run: impl Future<Output = PgWireResult<T>>,
        each: impl Fn(T, &dyn Fn(Response) -> Response) -> T,
    ) -> PgWireResult<T> {
        if !self.admin
            && self
                .engine
                .tables_read(sql)
                .iter()
                .any(|t| t == ACCESS_TABLE)
        {
            let refusal = format!("{ACCESS_TABLE} is for admin tokens");
            self.record(token, source, sql, 403, &refusal);
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                "42501".into(),
                refusal,
            ))));
        }
        let permit = self.slot().await?;
        let started = Instant::now();
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        // DataFusion's planner panics on some statements: a refusal, not a dropped connection.
        let run = async {
            futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run))
                .await
                .unwrap_or_else(|_| {
                    Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                        "ERROR".into(),
                        "XX000".into(),
                        "the query planner failed on this statement; write it another way".into(),
                    ))))
                })
        };
        let ran = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, run)
                .await
                .unwrap_or_else(|_| Err(timed_out())),
            None => run.await,
        };
        let outcome = match &ran {
            Ok(_) => "ok",
            Err(PgWireError::UserError(_)) => "refused",
            Err(_) => "error",
        };
        tracing::info!(
            token = %token,
            sql = %sql,
            outcome,
            planning_ms = started.elapsed().as_millis() as u64,
            "postgres protocol: query"
        );
        metrics::counter!("auditlake_queries_total", "outcome" => outcome).increment(1);
        match &ran {
            Ok(_) => self.record(token, source, sql, 200, "ok"),
            Err(PgWireError::UserError(info)) => {
                self.record(token, source, sql, 400, &info.message);
            }
            Err(e) => self.record(token, source, sql, 500, &e.to_string()),
        }
        let max_rows = self.max_rows;
        Ok(each(ran?, &|response| {
            limit(response, Arc::clone(&permit), deadline, max_rows)
        }))
    }
}

impl Guarded {
    fn record(&self, token: &str, source: &str, sql: &str, status: i32, outcome: &str) {
        if let Some(log) = &self.access {
            log.record(&Access::new(
                token,
                source,
                "postgres",
                "query",
                Some(sql),
                status,
                outcome,
            ));
        }
    }
}

fn timed_out() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "57014".into(),
        "canceling statement: it ran past the server's query time limit".into(),
    )))
}

/// A result whose rows stop at `max_rows`, fail at `deadline`, and hold `permit` until the last
/// one is sent.
fn limit(
    response: Response,
    permit: Arc<OwnedSemaphorePermit>,
    deadline: Option<tokio::time::Instant>,
    max_rows: Option<usize>,
) -> Response {
    let Response::Query(mut query) = response else {
        return response;
    };
    let schema = query.row_schema();
    let tag = query.command_tag().to_string();
    let rows = std::mem::replace(query.data_rows(), Box::pin(stream::empty()));
    let rows = rows.take(max_rows.unwrap_or(usize::MAX));
    let rows = stream::unfold((rows, Some(permit)), move |(mut rows, permit)| async move {
        let permit = permit?;
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, rows.next()).await {
                Ok(next) => next,
                Err(_) => return Some((Err(timed_out()), (rows, None))),
            },
            None => rows.next().await,
        };
        next.map(|row| (row, (rows, Some(permit))))
    });
    let mut bounded = QueryResponse::new(schema, rows);
    bounded.set_command_tag(&tag);
    Response::Query(bounded)
}

fn token_of<C: ClientInfo>(client: &C) -> String {
    client
        .metadata()
        .get(METADATA_TOKEN)
        .cloned()
        .unwrap_or_default()
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        SimpleQueryHandler::do_query(self.guarded()?.as_ref(), client, query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = <Guarded as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        // pgwire parses only after a login, which chose the service.
        match self.chosen.get() {
            Some(guarded) => guarded.query_parser(),
            None => self.sessions.closed.query_parser(),
        }
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        ExtendedQueryHandler::do_query(self.guarded()?.as_ref(), client, portal, max_rows).await
    }
}

#[async_trait]
impl SimpleQueryHandler for Guarded {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let token = token_of(client);
        let source = client.socket_addr().to_string();
        self.bounded(
            (&token, &source),
            query,
            SimpleQueryHandler::do_query(&self.inner, client, query),
            |responses, bound| responses.into_iter().map(bound).collect(),
        )
        .await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Guarded {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.inner.query_parser()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let token = token_of(client);
        let source = client.socket_addr().to_string();
        let sql = portal.statement.statement.0.clone();
        self.bounded(
            (&token, &source),
            &sql,
            ExtendedQueryHandler::do_query(&self.inner, client, portal, max_rows),
            |response, bound| bound(response),
        )
        .await
    }
}
