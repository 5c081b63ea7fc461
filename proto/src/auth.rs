//! Optional bearer-token authentication. Servers stack [`BearerAuthLayer`]: every request
//! must carry `authorization: Bearer <token>`, except gRPC health checks (so probes need no
//! secret). Clients dial with [`connect`] (or wrap a channel in [`AttachToken`]), which
//! sends the token when one is configured.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::Status;
use tonic::body::Body;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tower::{Layer, Service};

const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Adds [`BearerAuth`] to a service; with no token configured it lets everything through.
#[derive(Debug, Clone, Default)]
pub struct BearerAuthLayer {
    token: Option<Arc<str>>,
}

impl BearerAuthLayer {
    /// Requires `token` when it is `Some`.
    pub fn new(token: Option<String>) -> Self {
        Self {
            token: token.map(Arc::from),
        }
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            token: self.token.clone(),
        }
    }
}

/// Rejects requests without the right bearer token as `UNAUTHENTICATED`.
#[derive(Debug, Clone)]
pub struct BearerAuth<S> {
    inner: S,
    token: Option<Arc<str>>,
}

impl<S> BearerAuth<S> {
    fn allows<B>(&self, request: &Request<B>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if request.uri().path().starts_with(HEALTH_PREFIX) {
            return true;
        }
        request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials)
            .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
    }
}

/// The credentials of an `authorization` value in the Bearer scheme, whose name is
/// case-insensitive (RFC 9110 §11.1): `Bearer t`, `bearer t` and `BEARER t` all give `t`.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim_start_matches(' '))
}

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.allows(&request) {
            Either::Left(self.inner.call(request))
        } else {
            let status =
                Status::unauthenticated("missing or wrong bearer token in `authorization`");
            Either::Right(ready(Ok(status.into_http())))
        }
    }
}

/// A client-side interceptor that sends `authorization: Bearer <token>` on every request
/// (nothing when no token is configured).
#[derive(Debug, Clone, Default)]
pub struct AttachToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl AttachToken {
    /// Sends `token` when it is `Some`; a token that cannot be an HTTP header value (control
    /// characters, non-ASCII) is an error naming the problem, not a silent failure later.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        check_token("the bearer token", token)?;
        let header = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| "the bearer token must be printable ASCII".to_string())
            })
            .transpose()?;
        Ok(Self { header })
    }
}

/// Checks a configured token (`what` names it in the error): non-empty printable ASCII.
pub fn check_token(what: &str, token: Option<&str>) -> Result<(), String> {
    match token {
        Some("") => Err(format!(
            "{what} is empty: unset it to turn authentication off"
        )),
        Some(t) if !t.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
            Err(format!("{what} must be printable ASCII"))
        }
        _ => Ok(()),
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// A channel that sends the configured bearer token (see [`connect`]).
pub type AuthChannel = InterceptedService<tonic::transport::Channel, AttachToken>;

/// [`crate::connect`], then [`AttachToken`] with `token`.
pub async fn connect(
    url: &str,
    timeout: std::time::Duration,
    token: Option<&str>,
) -> Result<AuthChannel, String> {
    let attach = AttachToken::new(token)?;
    let channel = crate::connect(url, timeout).await?;
    Ok(InterceptedService::new(channel, attach))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secre"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "Bearer  t0k"] {
            assert_eq!(bearer_credentials(value), Some("t0k"), "{value}");
        }
        for value in ["Basic t0k", "Bearert0k", "t0k", ""] {
            assert_eq!(bearer_credentials(value), None, "{value}");
        }
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused() {
        assert!(AttachToken::new(Some("good-token")).is_ok());
        assert!(AttachToken::new(None).is_ok());
        let err = AttachToken::new(Some("bad\ntoken")).unwrap_err();
        assert!(err.contains("printable ASCII"), "{err}");
        let err = check_token("train.auth_token", Some("")).unwrap_err();
        assert!(err.starts_with("train.auth_token is empty"), "{err}");
    }
}
