//! Every way a request can fail, and the one place that maps each to an HTTP status.
//!
//! Module errors carry the detail for the log; the client gets only the status line
//! (and, for an unreachable backend, one fixed sentence). This module must never put
//! an error's detail, a path, or backend output in a response body.

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::backend::BackendError;
use crate::body::{self, Body};
use crate::params::ParamsError;
use crate::path::PathError;
use crate::request_body::RequestBodyError;
use crate::static_file::StaticError;

const BACKEND_UNAVAILABLE: &str = "502 Bad Gateway: the application's backend is unavailable\n";
/// What php-fpm itself answers for a missing script; a missing `.php` path gets the
/// same answer without reaching php-fpm.
const NO_SCRIPT: &str = "File not found.\n";

/// Why a request got an error response instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error(transparent)]
    Body(#[from] RequestBodyError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Static(#[from] StaticError),
}

impl RequestError {
    /// The status the client sees.
    pub fn status(&self) -> StatusCode {
        use StatusCode as S;
        match self {
            Self::Path(
                PathError::NotFound(_)
                | PathError::Escapes(_)
                | PathError::NoScript(_)
                | PathError::BrokenSymlink(_),
            ) => S::NOT_FOUND,
            Self::Path(PathError::Forbidden(_)) => S::FORBIDDEN,
            Self::Path(PathError::Denied { status, .. }) => *status,
            Self::Path(_) => S::BAD_REQUEST,
            Self::Params(ParamsError::NonUtf8Header(_)) => S::BAD_REQUEST,
            Self::Params(ParamsError::TooLarge { .. }) => S::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Params(ParamsError::BadMetadata(_) | ParamsError::NonUtf8Path(_)) => {
                S::INTERNAL_SERVER_ERROR
            }
            Self::Body(RequestBodyError::TooLarge { .. }) => S::PAYLOAD_TOO_LARGE,
            Self::Body(RequestBodyError::Read(_)) => S::BAD_REQUEST,
            Self::Body(RequestBodyError::Spill(err)) => match err.kind() {
                std::io::ErrorKind::StorageFull => S::INSUFFICIENT_STORAGE,
                _ => S::INTERNAL_SERVER_ERROR,
            },
            Self::Backend(BackendError::Timeout) => S::GATEWAY_TIMEOUT,
            Self::Backend(_) => S::BAD_GATEWAY,
            Self::Static(StaticError::Method(_)) => S::METHOD_NOT_ALLOWED,
            Self::Static(StaticError::Script(_)) => S::NOT_FOUND,
            Self::Static(StaticError::Read { source, .. }) => match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => S::NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => S::FORBIDDEN,
                _ => S::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The file or directory the worker was not allowed to read, if that is the cause.
    pub fn permission_denied(&self) -> Option<String> {
        match self {
            Self::Path(PathError::Forbidden(path)) => Some(path.display().to_string()),
            Self::Static(StaticError::Read { path, source })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Some(path.clone())
            }
            _ => None,
        }
    }

    /// The plain-text error response.
    pub fn response(&self) -> Response<Body> {
        let status = self.status();
        let text = match self {
            Self::Backend(BackendError::Unavailable { .. }) => BACKEND_UNAVAILABLE.to_owned(),
            Self::Path(PathError::NoScript(_)) => NO_SCRIPT.to_owned(),
            _ => status_line(status),
        };
        let mut response = Response::new(body::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        response
    }
}

fn status_line(status: StatusCode) -> String {
    format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_statuses_clients_rely_on() {
        let too_big = RequestError::from(ParamsError::TooLarge { len: 70_000 });
        assert_eq!(too_big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let body = RequestError::from(RequestBodyError::TooLarge { max: 1 });
        assert_eq!(body.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(RequestError::from(PathError::ControlByte).status(), StatusCode::BAD_REQUEST);
        assert_eq!(RequestError::from(BackendError::Timeout).status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(RequestError::from(BackendError::Truncated).status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn says_when_the_backend_is_down_and_nothing_else() {
        let source = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err =
            RequestError::from(BackendError::Unavailable { backend: "unix:/s".into(), source });
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        let missing = RequestError::from(PathError::NotFound("/secret/path".into()));
        assert_eq!(missing.response().status(), StatusCode::NOT_FOUND);
        assert_eq!(status_line(StatusCode::NOT_FOUND), "404 Not Found\n");
    }
}
