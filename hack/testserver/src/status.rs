//! `metav1.Status` error bodies, shaped exactly like kube-apiserver's.
//!
//! Clients (kube-rs `ErrorResponse`, kubectl) parse these, so message, reason,
//! details and code follow the real server's wording.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::registry::ResourceInfo;

/// An API error that renders as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP code.
    pub code: u16,
    /// Machine readable reason (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human readable message.
    pub message: String,
    /// `details` object, if any.
    pub details: Option<Value>,
    /// `Retry-After` header seconds, if any.
    pub retry_after: Option<u64>,
}

fn details(info: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({"name": name});
    if !info.group.is_empty() {
        d["group"] = json!(info.group);
    }
    d["kind"] = json!(info.plural);
    d
}

impl ApiError {
    /// A generic error.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 404 NotFound for a named object.
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.qualified(), name),
            )
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", info.qualified(), name),
            )
        }
    }

    /// 409 Conflict with the standard "object has been modified" message.
    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict_msg(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a custom cause.
    pub fn conflict_msg(info: &ResourceInfo, name: &str, cause: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    info.qualified(),
                    name,
                    cause
                ),
            )
        }
    }

    /// 422 Invalid with one field cause.
    pub fn invalid(info: &ResourceInfo, name: &str, field: &str, cause: &str) -> Self {
        let mut d = json!({"name": name});
        if !info.group.is_empty() {
            d["group"] = json!(info.group);
        }
        d["kind"] = json!(info.kind);
        d["causes"] = json!([{"reason": "FieldValueInvalid", "message": cause, "field": field}]);
        ApiError {
            details: Some(d),
            ..Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"{}\" is invalid: {}: {}",
                    info.qualified_kind(),
                    name,
                    field,
                    cause
                ),
            )
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 404 for an unknown path.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 410 Gone / Expired (too old resource version).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 for an unsupported patch content type.
    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {ct}"))
    }

    /// The `Status` object body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        } else if let Some(ra) = self.retry_after {
            s["details"] = json!({"retryAfterSeconds": ra});
        }
        s["code"] = json!(self.code);
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (
            StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(ra) = self.retry_after {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(ra));
        }
        resp
    }
}
