//! [`AuthLayer`]: a tower layer in front of every gRPC service of a process. Before any
//! handler runs (and before the request body is read), it asks the process's
//! [`AccessPolicy`] whether the caller may call that method, by the method's path and the
//! request's headers; a refused request is answered `UNAUTHENTICATED` or `PERMISSION_DENIED`
//! and goes no further.
//!
//! Policies are default-deny: a method a policy does not name is refused, so a service added
//! later is closed until someone decides who may call it.

use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use futures::future::BoxFuture;
use tonic::Status;
use tonic::codegen::Service;
use tonic::codegen::http::{HeaderMap, Request, Response};

use crate::credentials::{MAX_TOKEN_LEN, Role};

/// Who a request came from, as the policy established it; handlers find it in the request's
/// extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The role the caller proved, or `None` on a server without tokens.
    pub role: Option<Role>,
}

/// Decides who may call what.
pub trait AccessPolicy: Send + Sync + 'static {
    /// Checks one request, by its gRPC path (`/quiver.v1.Coordinator/SubmitJob`) and headers.
    fn check(&self, path: &str, headers: &HeaderMap) -> Result<Caller, Status>;
}

/// The secret in a request's `authorization` header: `Bearer <secret>`, or HTTP Basic with the
/// secret as password (what browsers and Prometheus scrapers send). `None` when absent or
/// malformed.
pub fn presented_secret(headers: &HeaderMap) -> Option<String> {
    secret_in_authorization(headers.get("authorization")?.to_str().ok()?)
}

/// The secret in the value of an `authorization` header (see [`presented_secret`]).
pub fn secret_in_authorization(value: &str) -> Option<String> {
    let value = value.trim();
    if value.len() > 2 * MAX_TOKEN_LEN {
        return None;
    }
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_string());
    }
    None
}

/// The layer; wrap a tonic server with `Server::builder().layer(AuthLayer::new(policy))`.
#[derive(Clone)]
pub struct AuthLayer {
    policy: Arc<dyn AccessPolicy>,
}

impl AuthLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: Arc<dyn AccessPolicy>) -> Self {
        AuthLayer { policy }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around a server's routes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    policy: Arc<dyn AccessPolicy>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.policy.check(request.uri().path(), request.headers()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                tracing::debug!(path = %request.uri().path(), code = ?status.code(), "request refused");
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

/// The `UNAUTHENTICATED` answer to a call that carried no token where one is needed.
pub fn token_needed(server: &str, role: Role) -> Status {
    Status::unauthenticated(format!(
        "this Quiver {server} requires a {role} token: pass --token-file PATH or set QUIVER_TOKEN_FILE / QUIVER_TOKEN (in the SDK: ClientOptions::token); it is sent as `authorization: Bearer <token>`"
    ))
}

/// The answer to a call whose token is wrong for the method: `PERMISSION_DENIED` when it is a
/// valid token of another role, `UNAUTHENTICATED` when it is no token of this cluster.
pub fn token_refused(server: &str, needed: Role, presented_roles: &[Role]) -> Status {
    match presented_roles.first() {
        Some(other) => Status::permission_denied(format!(
            "this call is for {needed}s; a {other} token cannot make it"
        )),
        None => Status::unauthenticated(format!(
            "the token given is not accepted by this Quiver {server}; check --token-file / QUIVER_TOKEN"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codegen::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_secrets_are_read() {
        assert_eq!(
            presented_secret(&headers("Bearer abc123")).as_deref(),
            Some("abc123")
        );
        assert_eq!(
            presented_secret(&headers("bearer  abc123 ")).as_deref(),
            Some("abc123")
        );
        // "user:s3cret" in base64.
        assert_eq!(
            presented_secret(&headers("Basic dXNlcjpzM2NyZXQ=")).as_deref(),
            Some("s3cret")
        );
        assert_eq!(presented_secret(&headers("Digest whatever")), None);
        assert_eq!(presented_secret(&headers("Basic !!!")), None);
        assert_eq!(presented_secret(&HeaderMap::new()), None);
    }
}
