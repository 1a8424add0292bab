//! The error model: every failure becomes `{"error": {"code", "message"}}` with the right status,
//! mapped from each boundary's error type in this one place.
//!
//! Messages never carry content, tokens or subjects: they name fields and rules, not values.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sealroom::RoomError;
use sealroom::identity::AuthError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `not_found` or `invalid_token`.
    pub code: &'static str,
    /// A human-readable explanation; never contains stored content.
    pub message: String,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }

    /// The caller sent more than their share; says when to retry.
    pub fn rate_limited(retry_after: std::time::Duration) -> ApiError {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        ApiError {
            retry_after_secs: Some(secs),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry later")
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code (`not_found`), for answers in other shapes (MCP tool results).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The explanation (never stored content).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Asks the client to wait this long before retrying.
    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The same error in OpenAI's shape (`error.message`, `type`, `code`, `param`), which the
    /// OpenAI SDKs surface: the proxy's routes answer every error so, the API's routes never.
    pub fn into_openai_response(self) -> Response {
        let kind = match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            502 | 504 => "upstream_error",
            _ => "server_error",
        };
        let body =
            serde_json::json!({"error": {"message": &self.message, "type": kind, "code": self.code, "param": null}});
        let response = (self.status, Json(body)).into_response();
        self.with_headers(response)
    }

    fn with_headers(&self, mut response: Response) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        }
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message.clone() } };
        let response = (self.status, Json(body)).into_response();
        self.with_headers(response)
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        metrics::counter!("sealroom_auth_failures_total", "reason" => error.reason()).increment(1);
        let message = match error {
            AuthError::Missing => "an Authorization: Bearer token is required",
            AuthError::Expired => "the token has expired",
            _ => "the token is not valid",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }
}

impl From<crate::embeddings::EmbedError> for ApiError {
    fn from(error: crate::embeddings::EmbedError) -> ApiError {
        if let crate::embeddings::EmbedError::Room(error) = error {
            return error.into();
        }
        tracing::warn!(%error, "embeddings upstream failed");
        let status = match error {
            crate::embeddings::EmbedError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, "upstream_error", error.to_string())
    }
}

impl From<sealroom::rooms::InputError> for ApiError {
    fn from(error: sealroom::rooms::InputError) -> ApiError {
        ApiError::bad_request(error.to_string())
    }
}

impl From<RoomError> for ApiError {
    fn from(error: RoomError) -> ApiError {
        match error {
            // One answer for "does not exist" and "belongs to someone else": no difference a
            // client could measure.
            RoomError::NotFound => ApiError::not_found(),
            RoomError::InvalidInput(input) => ApiError::bad_request(input.to_string()),
            RoomError::NoTenant => ApiError::new(StatusCode::FORBIDDEN, "no_tenant", "the token names no tenant"),
            RoomError::Forbidden(role) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this needs the {role:?} role"))
            }
            RoomError::QuotaExceeded(what) => {
                ApiError::new(StatusCode::FORBIDDEN, "quota_exceeded", format!("the room's quota of {what} is used up"))
            }
            RoomError::Conflict => {
                ApiError::new(StatusCode::CONFLICT, "conflict", "too many concurrent changes; retry")
            }
            // The request began before the room was erased; nothing more of it was read or
            // written. A new request works in the new, empty room.
            RoomError::Erased => ApiError::new(
                StatusCode::CONFLICT,
                "room_erased",
                "the room was erased while this request ran; nothing more of it was done",
            ),
            RoomError::IsolationAlarm => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "integrity_error",
                "a stored record failed its integrity check and was not served",
            ),
            RoomError::Unavailable(reason) => {
                tracing::error!(%reason, "storage unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "storage is unavailable; retry later")
            }
        }
    }
}

/// Describes a JSON parse failure without quoting the input: serde's messages can echo values.
pub fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = error.to_string();
    let position = format!("line {}, column {}", error.line(), error.column());
    match error.classify() {
        Category::Syntax => format!("malformed JSON at {position}"),
        Category::Eof => "the JSON body ends early".to_owned(),
        Category::Io => "the body could not be read".to_owned(),
        Category::Data => {
            for prefix in ["missing field `", "unknown field `", "duplicate field `"] {
                if let Some(rest) = text.strip_prefix(prefix)
                    && let Some(name) =
                        rest.split('`').next().filter(|name| name.len() <= 64 && !name.chars().any(char::is_control))
                {
                    return format!("{prefix}{name}` at {position}");
                }
            }
            // The variants a field accepts are the schema's words, never the client's value.
            if text.starts_with("unknown variant")
                && let Some(expected) = text.rsplit(", expected ").next().filter(|_| text.contains(", expected "))
                && let Some(expected) = expected.split(" at line ").next()
                && expected.len() <= 200
                && !expected.chars().any(char::is_control)
            {
                return format!("unknown variant (expected {expected}) at {position}");
            }
            const KINDS: [&str; 4] = ["invalid type", "invalid value", "invalid length", "unknown variant"];
            let kind = KINDS.iter().find(|kind| text.starts_with(**kind)).copied().unwrap_or("invalid value");
            format!("{kind} at {position}")
        }
    }
}
