//! Who calls: the credentials of a call (a bearer token, or Basic name and token), the caller's
//! view of the engine and its catalog (a cluster-limited token's, an admin's with `access_log`),
//! and the access log's record of each query.

use std::sync::Arc;
use std::time::Instant;

use auditlake_engine::{Access, QueryEngine};
use base64::Engine;
use datafusion::prelude::SessionContext;
use tonic::{Request, Status};

use super::FlightSql;
use super::answers::{engine_status, log_query};
use crate::auth::{Principal, Scope};
use crate::error::ApiError;

/// A caller and where it calls from.
pub(super) struct Who {
    pub(super) principal: Principal,
    pub(super) source: String,
}

impl std::ops::Deref for Who {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl FlightSql {
    /// Who makes a call (`anonymous` with authentication off), if its token grants the `query`
    /// scope.
    pub(super) fn caller<T>(&self, request: &Request<T>) -> Result<Who, Status> {
        let source = request
            .remote_addr()
            .map_or_else(|| "-".to_string(), |a| a.to_string());
        self.principal(request)
            .map(|principal| Who { principal, source })
    }

    pub(super) fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if !self.auth.is_enabled() {
            return self
                .auth
                .check_token("", Scope::Query)
                .map_err(|e| Status::internal(e.to_string()));
        }
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (presented, claimed) = if let Some(bearer) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        {
            (bearer.trim().to_string(), None)
        } else if let Some(basic) = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
        {
            let (name, token) = basic_credentials(basic).ok_or_else(|| {
                Status::unauthenticated("the Basic credentials are not base64 name:token")
            })?;
            (token, Some(name))
        } else {
            return Err(Status::unauthenticated(
                "a token is required: authorization: Bearer <token>, or username and password \
                 (the token's name and the token)",
            ));
        };
        match self.auth.check_token(&presented, Scope::Query) {
            Ok(principal) if claimed.as_ref().is_none_or(|c| *c == principal.name) => Ok(principal),
            Err(ApiError::Forbidden(_)) => {
                tracing::warn!("flight sql: a token without the query scope");
                Err(Status::permission_denied("the token lacks the query scope"))
            }
            _ => {
                tracing::warn!(claimed = ?claimed, "flight sql: login refused");
                Err(Status::unauthenticated("invalid token"))
            }
        }
    }

    /// Logs and records a query `caller` ran (or was refused).
    pub(super) fn finished(
        &self,
        caller: &Who,
        sql: &str,
        error: Option<&Status>,
        started: Instant,
    ) {
        log_query(&caller.name, sql, error, started);
        if let Some(log) = &self.access {
            let (status, outcome) = match error {
                None => (200, "ok".to_string()),
                Some(e) if e.code() == tonic::Code::PermissionDenied => (403, e.message().into()),
                Some(e) if e.code() == tonic::Code::Internal => (500, e.message().into()),
                Some(e) => (400, e.message().into()),
            };
            log.record(&Access::new(
                &caller.name,
                &caller.source,
                "flight",
                "query",
                Some(sql),
                status,
                &outcome,
            ));
        }
    }

    /// The engine as `caller` sees it: for a cluster-limited token, only its clusters' rows;
    /// for an admin, the engine with `access_log`.
    pub(super) fn engine_for(&self, caller: &Principal) -> Result<Arc<QueryEngine>, Status> {
        match &caller.clusters {
            None if caller.admin => Ok(Arc::clone(
                self.admin_engine.as_ref().unwrap_or(&self.engine),
            )),
            None => Ok(Arc::clone(&self.engine)),
            Some(clusters) => self
                .engine
                .limited_to(Arc::clone(clusters))
                .map(Arc::new)
                .map_err(engine_status),
        }
    }

    /// The catalog as `caller` sees it.
    pub(super) fn catalog_for(&self, caller: &Principal) -> Result<SessionContext, Status> {
        match (&caller.clusters, caller.admin) {
            (None, false) => Ok(self.catalog.clone()),
            _ => Ok(self.engine_for(caller)?.session()),
        }
    }
}

/// The name and token of HTTP Basic credentials, `base64(name:token)`, padded or not (Go's
/// Flight SQL client leaves the padding out).
pub(super) fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const BASIC: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded = String::from_utf8(BASIC.decode(encoded.trim()).ok()?).ok()?;
    let (name, token) = decoded.split_once(':')?;
    Some((name.to_string(), token.to_string()))
}
