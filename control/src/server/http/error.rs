//! gRPC statuses as HTTP answers: the code mapped to its HTTP meaning and a JSON body
//! `{"error": {"code", "message", "parameter"}}`; `parameter` names the query parameter
//! or path segment a 400 is about (the services' INVALID_ARGUMENT messages start with
//! the field: `page_token: not a token this server issued`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

/// A failed request, answered as JSON.
#[derive(Debug)]
pub struct HttpError(pub Status);

impl From<Status> for HttpError {
    fn from(s: Status) -> Self {
        Self(s)
    }
}

impl HttpError {
    /// 400 naming `parameter`.
    pub fn bad(parameter: &str, reason: impl std::fmt::Display) -> Self {
        Self(crate::server::status::invalid(parameter, reason))
    }
}

/// The HTTP status of a gRPC code (as grpc-gateway maps them).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The JSON body of a failed request.
pub fn error_json(s: &Status) -> serde_json::Value {
    let parameter = match s.code() {
        Code::InvalidArgument => s
            .message()
            .split_once(':')
            .map(|(field, _)| field)
            .filter(|f| !f.contains(' '))
            .map(str::to_string),
        _ => None,
    };
    serde_json::json!({
        "error": {
            "code": format!("{:?}", s.code()),
            "message": s.message(),
            "parameter": parameter,
        }
    })
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        json_response(http_status(self.0.code()), &error_json(&self.0))
    }
}

/// `value` as a JSON answer with `status`; never cached (the state moves on).
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}
