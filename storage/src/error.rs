//! [`StorageError`]: what went wrong, and at which location.

/// Why a storage operation failed. Every variant names the location it concerns; none carries
/// a credential.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The text is not a path or URL this crate can use.
    #[error("{location}: {reason}")]
    BadLocation {
        /// The text as given.
        location: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A storage option has an unknown name or a bad value.
    #[error("storage option {key}: {reason}")]
    BadOption {
        /// The option's name (never its value: it may be a secret).
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// The object does not exist.
    #[error("{location} does not exist")]
    NotFound {
        /// The object's location.
        location: String,
    },
    /// Any other failure of the store (permissions, network, a missing bucket, ...).
    #[error("{location}: {message}")]
    Store {
        /// The location the operation was about.
        location: String,
        /// The store's explanation.
        message: String,
    },
}

impl StorageError {
    /// Wraps an `object_store` error about `location`, keeping "not found" distinguishable.
    pub fn from_store(location: impl std::fmt::Display, e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                location: location.to_string(),
            },
            other => StorageError::Store {
                location: location.to_string(),
                message: other.to_string(),
            },
        }
    }

    /// Whether the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
}
