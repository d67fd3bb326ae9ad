//! [`ApiState`]: what every handler shares, built once by the binary.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auditlake_engine::{AccessLog, QueryEngine, Readiness, Service, TriageStore};
use auditlake_rules::CompiledPack;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;

use crate::auth::{Auth, Principal};
use crate::error::ApiError;

/// Shared state of the API routes.
#[derive(Clone)]
pub struct ApiState {
    /// Read-only SQL with the server's limits.
    pub query: Arc<QueryEngine>,
    /// The loaded rules, rendered once for `GET /v1/rules`.
    pub rules: Arc<serde_json::Value>,
    /// The writer, for readiness; `None` for a read-only server.
    pub service: Option<Arc<Service>>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Who may call what.
    pub auth: Arc<Auth>,
    /// Queries running at once, at most; more wait up to [`ApiState::queue_wait`], then get 429.
    pub query_slots: Arc<Semaphore>,
    /// How long a query waits for a slot.
    pub queue_wait: Duration,
    /// Sources whose health `/readyz` reports besides the writer's (the Kafka consumer).
    pub sources: Vec<Arc<dyn SourceHealth>>,
    /// Investigators' verdicts on alerts; `None` when the server keeps none (then triage
    /// requests are refused).
    pub triage: Option<Arc<TriageStore>>,
    /// The data directory, whose sizes `/v1/status` reports; `None` when not local.
    pub data_dir: Option<PathBuf>,
    /// The rules file false-positive exceptions are appended to, when the server was given one.
    pub exceptions_file: Option<PathBuf>,
    /// Where calls are recorded, and the engine `admin` tokens query (with `access_log`);
    /// `None`: calls are not recorded.
    pub access: Option<(Arc<AccessLog>, Arc<QueryEngine>)>,
}

/// A source of events that `/readyz` reports on.
pub trait SourceHealth: Send + Sync {
    /// Its name in the `/readyz` answer (`kafka`).
    fn name(&self) -> &str;
    /// Whether it works now, and what to show about it.
    fn check(&self) -> (bool, serde_json::Value);
}

impl ApiState {
    /// State with defaults: 4 concurrent queries, 10 s queueing.
    pub fn new(query: Arc<QueryEngine>, rules: &CompiledPack, auth: Auth) -> Self {
        Self {
            query,
            rules: Arc::new(rules_json(rules)),
            service: None,
            metrics: None,
            auth: Arc::new(auth),
            query_slots: Arc::new(Semaphore::new(4)),
            queue_wait: Duration::from_secs(10),
            sources: Vec::new(),
            triage: None,
            data_dir: None,
            exceptions_file: None,
            access: None,
        }
    }

    /// One of the query slots, waiting up to [`ApiState::queue_wait`] for it.
    pub async fn query_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        tokio::time::timeout(self.queue_wait, self.query_slots.acquire())
            .await
            .map_err(|_| ApiError::Busy {
                reason: "too many queries running".into(),
                retry_after_secs: 5,
            })?
            .map_err(ApiError::internal)
    }

    /// The state as `caller` sees it: for a cluster-limited token, the query engine holds only
    /// its clusters' rows.
    pub fn for_caller(&self, caller: &Principal) -> Result<Self, ApiError> {
        let Some(clusters) = &caller.clusters else {
            return Ok(match &self.access {
                Some((_, admin)) if caller.admin => Self {
                    query: Arc::clone(admin),
                    ..self.clone()
                },
                _ => self.clone(),
            });
        };
        Ok(Self {
            query: Arc::new(self.query.limited_to(Arc::clone(clusters))?),
            ..self.clone()
        })
    }

    /// Whether the writer (if any) has replayed its log.
    pub fn readiness(&self) -> Readiness {
        self.service
            .as_ref()
            .map_or(Readiness::Ready, |s| s.readiness())
    }
}

/// The API state as the authenticated caller sees it ([`ApiState::for_caller`]), for handlers
/// behind [`crate::auth::require`]; without a caller (a route that authenticates no one) it
/// refuses, so a handler can never see more than its caller may.
pub struct Caller(pub ApiState, pub Principal);

impl axum::extract::FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let caller = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self(state.for_caller(&caller)?, caller))
    }
}

/// The loaded rules as `GET /v1/rules` returns them.
pub fn rules_json(pack: &CompiledPack) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = pack
        .rules
        .iter()
        .map(|r| {
            let d = &r.def;
            serde_json::json!({
                "id": d.id,
                "title": d.title,
                "description": d.description,
                "severity": d.severity,
                "category": d.category,
                "mitre": d.mitre,
                "tags": d.tags,
                "enabled": d.enabled,
                "condition": d.condition,
                "output": d.output,
                "threshold": d.threshold.as_ref().map(|t| serde_json::json!({
                    "count": t.count,
                    "window": t.window,
                    "group_by": t.group_by,
                    "distinct": t.distinct,
                })),
                "examples": {
                    "fires": serde_json::to_value(&d.examples.fires).unwrap_or_default(),
                    "silent": serde_json::to_value(&d.examples.silent).unwrap_or_default(),
                },
                "source": r.file,
            })
        })
        .collect();
    serde_json::json!({ "count": rules.len(), "rules": rules })
}
