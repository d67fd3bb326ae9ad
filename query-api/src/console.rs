//! The investigator console: plain HTML, CSS and JavaScript modules from `query-api/console/`,
//! compiled into the binary and served at `/` and `/console/*` with a strict
//! Content-Security-Policy. The pages call the same `/v1/*` routes with the token the user gave,
//! kept in the tab's session storage.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Scripts and styles only from this server, no inline script or style, no framing, no
/// requests elsewhere: a value that slips into the page as markup still cannot run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Every asset: its name under `/console/`, its type and its bytes.
const ASSETS: [(&str, &str, &str); 12] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
    ("app.js", JS, include_str!("../console/app.js")),
    ("api.js", JS, include_str!("../console/api.js")),
    ("ui.js", JS, include_str!("../console/ui.js")),
    ("chart.js", JS, include_str!("../console/chart.js")),
    ("alerts.js", JS, include_str!("../console/alerts.js")),
    ("alert.js", JS, include_str!("../console/alert.js")),
    ("explore.js", JS, include_str!("../console/explore.js")),
    ("sql.js", JS, include_str!("../console/sql.js")),
    ("rules.js", JS, include_str!("../console/rules.js")),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../console/favicon.svg"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";

fn serve(name: &str) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "no such console file"})),
        )
            .into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, *content_type)], *body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the console's page.
pub(crate) async fn index() -> Response {
    serve("index.html")
}

/// `GET /console/{file}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    serve(&name)
}
