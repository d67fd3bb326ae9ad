//! Who may call what: bearer tokens with scopes, and client certificates the TLS layer verified.
//!
//! Tokens are configured as lines `NAME SCOPES TOKEN [clusters=a,b]` (scopes comma-separated from
//! `ingest`, `query`, `triage`, `admin`; `admin` implies the others). A token limited to clusters
//! sees only their rows on every query path, and may post events only for them. Only a SHA-256 digest of each token
//! is kept, and a presented token is compared against every digest in constant time, so neither
//! timing nor a memory dump reveals a token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Post audit events to the webhook.
    Ingest,
    /// Run SQL, read alerts and rules.
    Query,
    /// Change alerts' triage state and add exceptions from false positives.
    Triage,
    /// Everything, and `/metrics`.
    Admin,
}

impl Scope {
    /// The scope's name in token files and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Query => "query",
            Scope::Triage => "triage",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "query" => Some(Scope::Query),
            "triage" => Some(Scope::Triage),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// One configured token.
#[derive(Clone)]
struct Token {
    /// For logs; the token itself is never kept.
    name: String,
    scopes: Vec<Scope>,
    digest: [u8; 32],
    /// The clusters whose rows it may see; `None`: every cluster.
    clusters: Option<Arc<[String]>>,
}

/// A client certificate the TLS layer verified against `--tls-client-ca`, put in the request's
/// extensions by the server.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The certificate's subject, for logs.
    pub subject: String,
}

/// Who made the request, once authenticated: a name for logs and the triage trail, and what it
/// may see.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's name, `cert:SUBJECT` for a client certificate, `anonymous` without
    /// authentication.
    pub name: String,
    /// Whether it holds the `admin` scope (or authentication is off).
    pub admin: bool,
    /// The clusters whose rows it may see; `None`: every cluster.
    pub clusters: Option<Arc<[String]>>,
}

impl Principal {
    fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            admin: true,
            clusters: None,
        }
    }

    /// Whether it may see the rows of `cluster`.
    pub fn sees(&self, cluster: &str) -> bool {
        self.clusters
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == cluster))
    }
}

/// The credentials a server accepts.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Vec<Token>,
    /// Scopes a verified client certificate grants (empty: certificates grant nothing).
    client_cert_scopes: Vec<Scope>,
    /// Off only when the operator said so (`--insecure-no-auth`) or the server listens on
    /// loopback without tokens.
    enabled: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field(
                "tokens",
                &self.tokens.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .field("client_cert_scopes", &self.client_cert_scopes)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Auth {
    /// Every request allowed.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Requests need one of these tokens (or a verified client certificate, see
    /// [`Auth::with_client_cert_scopes`]).
    pub fn with_tokens(text: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for (i, line) in text.split(['\n', ';']).enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (name, scopes, token, limit) = match fields[..] {
                [name, scopes, token] => (name, scopes, token, None),
                [name, scopes, token, limit] => (name, scopes, token, Some(limit)),
                _ => {
                    return Err(format!(
                        "entry {}: expected `NAME SCOPES TOKEN [clusters=a,b]`, found {} fields",
                        i + 1,
                        fields.len()
                    ));
                }
            };
            let scopes = scopes
                .split(',')
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        format!(
                            "entry {}: unknown scope `{s}` (ingest, query, triage, admin)",
                            i + 1
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if token.len() < 16 {
                return Err(format!(
                    "entry {} ({name}): token shorter than 16 characters",
                    i + 1
                ));
            }
            let clusters = limit
                .map(|limit| clusters(limit).map_err(|e| format!("entry {} ({name}): {e}", i + 1)))
                .transpose()?;
            if clusters.is_some() && scopes.contains(&Scope::Admin) {
                return Err(format!(
                    "entry {} ({name}): an admin token sees every cluster; drop `clusters=` or \
                     the admin scope",
                    i + 1
                ));
            }
            tokens.push(Token {
                name: name.to_string(),
                scopes,
                digest: Sha256::digest(token.as_bytes()).into(),
                clusters,
            });
        }
        if tokens.is_empty() {
            return Err("no tokens configured".into());
        }
        Ok(Self {
            tokens,
            client_cert_scopes: Vec::new(),
            enabled: true,
        })
    }

    /// Requests over TLS with a verified client certificate get these scopes.
    pub fn with_client_cert_scopes(mut self, scopes: Vec<Scope>) -> Self {
        self.client_cert_scopes = scopes;
        self.enabled = true;
        self
    }

    /// Whether requests are checked at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Checks a request's credentials for `scope`.
    pub fn check(&self, request: &Request, scope: Scope) -> Result<Principal, ApiError> {
        if !self.enabled {
            return Ok(Principal::anonymous());
        }
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if let Some(presented) = bearer {
            return self.check_token(presented, scope);
        }
        if let Some(identity) = request.extensions().get::<ClientIdentity>()
            && !self.client_cert_scopes.is_empty()
        {
            return if grants(&self.client_cert_scopes, scope) {
                Ok(Principal {
                    name: format!("cert:{}", identity.subject),
                    admin: self.client_cert_scopes.contains(&Scope::Admin),
                    clusters: None,
                })
            } else {
                Err(ApiError::Forbidden(scope.name()))
            };
        }
        Err(ApiError::Unauthorized)
    }
}

impl Auth {
    /// Checks a presented token (a bearer token, or the password of a SQL protocol's login)
    /// for `scope`; the principal is the token's name. With authentication off, anyone is
    /// `anonymous`.
    pub fn check_token(&self, presented: &str, scope: Scope) -> Result<Principal, ApiError> {
        if !self.enabled {
            return Ok(Principal::anonymous());
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Compare with every token, whatever matches, so timing says nothing.
        let mut found: Option<&Token> = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token);
            }
        }
        let token = found.ok_or(ApiError::Unauthorized)?;
        if grants(&token.scopes, scope) {
            Ok(Principal {
                name: token.name.clone(),
                admin: token.scopes.contains(&Scope::Admin),
                clusters: token.clusters.clone(),
            })
        } else {
            Err(ApiError::Forbidden(scope.name()))
        }
    }
}

/// The clusters of a token line's `clusters=a,b` field.
fn clusters(field: &str) -> Result<Arc<[String]>, String> {
    let list = field
        .strip_prefix("clusters=")
        .ok_or_else(|| format!("the fourth field must be `clusters=a,b`, not {field:?}"))?;
    let names: Vec<String> = list.split(',').map(str::to_string).collect();
    if let Some(bad) = names
        .iter()
        .find(|n| !auditlake_schema::valid_cluster_name(n))
    {
        return Err(format!(
            "cluster name {bad:?} must be 1 to 253 letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(names.into())
}

fn grants(scopes: &[Scope], wanted: Scope) -> bool {
    scopes.iter().any(|s| *s == wanted || *s == Scope::Admin)
}

/// Middleware requiring a scope on every route it wraps; use it as
/// `axum::middleware::from_fn_with_state((auth, scope), require)`.
pub async fn require(
    State((auth, scope)): State<(Arc<Auth>, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.check(&request, scope) {
        Ok(principal) => {
            request.extensions_mut().insert(principal.clone());
            let mut response = next.run(request).await;
            // For the request log, which sees only the response.
            response.extensions_mut().insert(principal);
            response
        }
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

/// Middleware for the webhook routes, inside [`require`]: a cluster-limited token posts events
/// only for its clusters, named in the path (`/v1/webhook/{cluster}`) or, for `/v1/webhook`,
/// by the server's default cluster (the state). Use it as
/// `axum::middleware::from_fn_with_state(default_cluster, require_own_cluster)`.
pub async fn require_own_cluster(
    State(default_cluster): State<Option<String>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(principal) = request.extensions().get::<Principal>() else {
        return axum::response::IntoResponse::into_response(ApiError::Unauthorized);
    };
    if let Some(clusters) = &principal.clusters {
        let named = match request.uri().path().strip_prefix("/v1/webhook/") {
            Some(cluster) => Some(cluster),
            None => default_cluster.as_deref(),
        };
        if !named.is_some_and(|c| principal.sees(c)) {
            return axum::response::IntoResponse::into_response(ApiError::ForbiddenBecause(
                format!(
                    "token {:?} posts events only for the clusters {}, as /v1/webhook/CLUSTER",
                    principal.name,
                    clusters.join(", ")
                ),
            ));
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(token: Option<&str>) -> Request {
        let mut b = axum::http::Request::builder().uri("/");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(axum::body::Body::empty()).expect("request")
    }

    #[test]
    fn scopes_and_tokens() {
        let auth = Auth::with_tokens(
            "# comment\napiserver ingest 0123456789abcdef0123\nalice query,ingest aaaaaaaaaaaaaaaaaaaa\nops admin bbbbbbbbbbbbbbbbbbbb",
        )
        .expect("tokens");
        assert!(
            auth.check(&request(Some("0123456789abcdef0123")), Scope::Ingest)
                .is_ok()
        );
        assert!(matches!(
            auth.check(&request(Some("0123456789abcdef0123")), Scope::Query),
            Err(ApiError::Forbidden("query"))
        ));
        assert!(matches!(
            auth.check(&request(Some("wrong-token-wrong-token")), Scope::Ingest),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            auth.check(&request(None), Scope::Query),
            Err(ApiError::Unauthorized)
        ));
        assert!(
            auth.check(&request(Some("bbbbbbbbbbbbbbbbbbbb")), Scope::Query)
                .is_ok()
        );
        assert!(
            auth.check(&request(Some("aaaaaaaaaaaaaaaaaaaa")), Scope::Admin)
                .is_err()
        );
    }

    #[test]
    fn a_token_limited_to_clusters_carries_them() {
        let auth = Auth::with_tokens(
            "tenant query aaaaaaaaaaaaaaaaaaaa clusters=prod-eu,prod.us\nops admin bbbbbbbbbbbbbbbbbbbb",
        )
        .expect("tokens");
        let tenant = auth
            .check_token("aaaaaaaaaaaaaaaaaaaa", Scope::Query)
            .expect("tenant");
        assert!(!tenant.admin);
        assert!(tenant.sees("prod-eu") && tenant.sees("prod.us") && !tenant.sees("prod"));
        let ops = auth
            .check_token("bbbbbbbbbbbbbbbbbbbb", Scope::Query)
            .expect("ops");
        assert!(ops.admin && ops.clusters.is_none() && ops.sees("anything"));
    }

    #[test]
    fn bad_token_files_say_where() {
        assert!(
            Auth::with_tokens("a ingest")
                .expect_err("refused")
                .contains("entry 1")
        );
        assert!(
            Auth::with_tokens("a read 0123456789abcdef0123")
                .expect_err("refused")
                .contains("read")
        );
        assert!(
            Auth::with_tokens("a ingest short")
                .expect_err("refused")
                .contains("16")
        );
        assert!(Auth::with_tokens("\n# only comments\n").is_err());
    }
}
