//! [`CallCredentials`]: the headers a client adds to every call — `authorization: Bearer
//! <token>`, and for a worker's own calls its session key — as a tonic interceptor, so that no
//! call site can forget them.

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::credentials::Token;
use crate::error::{NetError, Result};

/// A channel whose every call carries the caller's credentials.
pub type AuthChannel = InterceptedService<Channel, CallCredentials>;

/// What a caller presents on each call. Cheap to clone.
#[derive(Clone, Default)]
pub struct CallCredentials {
    authorization: Option<AsciiMetadataValue>,
    worker_key: Option<AsciiMetadataValue>,
}

impl CallCredentials {
    /// No credentials (a cluster without tokens).
    pub fn none() -> Self {
        CallCredentials::default()
    }

    /// `authorization: Bearer <secret>` on every call; nothing when `secret` is `None`.
    pub fn bearer(secret: Option<&str>) -> Result<Self> {
        Ok(CallCredentials {
            authorization: secret.map(bearer_value).transpose()?,
            worker_key: None,
        })
    }

    /// The bearer `token`, if any.
    pub fn token(token: Option<&Token>) -> Result<Self> {
        Self::bearer(token.map(Token::expose))
    }

    /// Adds a worker's session key (the `quiver-worker-key` header).
    pub fn with_worker_key(mut self, key: &str) -> Result<Self> {
        self.worker_key = Some(ascii(key, "worker session key")?);
        Ok(self)
    }

    /// Whether calls carry a bearer token.
    pub fn has_bearer(&self) -> bool {
        self.authorization.is_some()
    }
}

fn bearer_value(secret: &str) -> Result<AsciiMetadataValue> {
    ascii(&format!("Bearer {secret}"), "token")
}

fn ascii(value: &str, what: &str) -> Result<AsciiMetadataValue> {
    MetadataValue::try_from(value).map_err(|_| NetError::BadToken {
        what: what.into(),
        problem: "must be visible ASCII".into(),
    })
}

impl Interceptor for CallCredentials {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        if let Some(v) = &self.authorization {
            metadata.insert("authorization", v.clone());
        }
        if let Some(v) = &self.worker_key {
            metadata.insert(crate::WORKER_KEY_HEADER, v.clone());
        }
        Ok(request)
    }
}
