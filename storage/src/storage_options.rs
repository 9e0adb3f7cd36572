//! [`StorageOptions`]: per-job settings for the object stores (credentials, endpoints), laid
//! over what each process reads from its environment.

use std::collections::BTreeMap;
use std::fmt;

use object_store::ClientConfigKey;
use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;

use crate::{Result, StorageError};

/// Settings for object stores, by the `object_store` crate's configuration key names:
/// `aws_access_key_id`, `aws_secret_access_key`, `aws_region`, `aws_endpoint`,
/// `aws_allow_http`, `google_service_account`, `azure_storage_account_name`, ... (or the
/// environment variable names in lower case). Each store applies the keys it knows.
///
/// Values are secrets as far as this type is concerned: `Debug` shows only the keys, and
/// the values of a few harmless ones (endpoint, region, `allow_http`).
///
/// ```
/// use quiver_storage::StorageOptions;
/// let options = StorageOptions::new()
///     .with("aws_endpoint", "http://127.0.0.1:9000")?
///     .with("aws_secret_access_key", "very-secret")?;
/// let shown = format!("{options:?}");
/// assert!(shown.contains("127.0.0.1:9000"));
/// assert!(!shown.contains("very-secret"));
/// # Ok::<(), quiver_storage::StorageError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StorageOptions {
    values: BTreeMap<String, String>,
}

/// Whether `key` only locates a store (which endpoint, region, bucket or account, whether
/// plain HTTP is allowed) and unlocks nothing: its value may be shown and written down.
/// Decided by what the key means to every store that knows it, not by its spelling, so that
/// aliases (`endpoint_url`, `aws_default_region`, ...) count too and a key that is a secret
/// to any store never does.
fn is_locating(key: &str) -> bool {
    let client = |k: &ClientConfigKey| matches!(k, ClientConfigKey::AllowHttp);
    let meanings = [
        key.parse::<AmazonS3ConfigKey>().ok().map(|k| match k {
            AmazonS3ConfigKey::Region
            | AmazonS3ConfigKey::DefaultRegion
            | AmazonS3ConfigKey::Bucket
            | AmazonS3ConfigKey::Endpoint
            | AmazonS3ConfigKey::VirtualHostedStyleRequest => true,
            AmazonS3ConfigKey::Client(c) => client(&c),
            _ => false,
        }),
        key.parse::<AzureConfigKey>().ok().map(|k| match k {
            AzureConfigKey::AccountName
            | AzureConfigKey::UseEmulator
            | AzureConfigKey::Endpoint
            | AzureConfigKey::UseFabricEndpoint
            | AzureConfigKey::ContainerName => true,
            AzureConfigKey::Client(c) => client(&c),
            _ => false,
        }),
        key.parse::<GoogleConfigKey>().ok().map(|k| match k {
            GoogleConfigKey::Bucket | GoogleConfigKey::BaseUrl => true,
            GoogleConfigKey::Client(c) => client(&c),
            _ => false,
        }),
        key.parse::<ClientConfigKey>().ok().map(|k| client(&k)),
    ];
    meanings.iter().any(Option::is_some) && meanings.iter().all(|m| m.unwrap_or(true))
}

impl StorageOptions {
    /// No options: every store is configured from the environment alone.
    pub fn new() -> Self {
        StorageOptions::default()
    }

    /// Adds a setting. The key is normalised to lower case and must be one some store knows.
    pub fn with(mut self, key: impl AsRef<str>, value: impl Into<String>) -> Result<Self> {
        let key = key.as_ref().to_ascii_lowercase();
        if !is_known_key(&key) {
            return Err(StorageError::BadOption {
                reason: "no object store knows this setting".into(),
                key,
            });
        }
        self.values.insert(key, value.into());
        Ok(self)
    }

    /// Every setting, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of one setting.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Only the settings that locate a store (endpoint, region, plain HTTP allowed, ...), not
    /// those that unlock it: what may be written down (a coordinator's job log) so that a
    /// resumed job reaches the same store, with credentials from the environment.
    pub fn locating_only(&self) -> StorageOptions {
        StorageOptions {
            values: self
                .values
                .iter()
                .filter(|(k, _)| is_locating(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The settings as given over the wire, checked as [`StorageOptions::with`] checks them.
    pub fn from_pairs<K: AsRef<str>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        pairs
            .into_iter()
            .try_fold(StorageOptions::new(), |o, (k, v)| o.with(k, v))
    }
}

fn is_known_key(key: &str) -> bool {
    key.parse::<AmazonS3ConfigKey>().is_ok()
        || key.parse::<GoogleConfigKey>().is_ok()
        || key.parse::<AzureConfigKey>().is_ok()
        || key.parse::<ClientConfigKey>().is_ok()
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.values {
            if is_locating(k) {
                map.entry(k, v);
            } else {
                map.entry(k, &"<redacted>");
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = StorageOptions::new()
            .with("aws_secret_acess_key", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("aws_secret_acess_key"), "{e}");
        assert!(
            StorageOptions::new()
                .with("AWS_ACCESS_KEY_ID", "k")
                .unwrap()
                .get("aws_access_key_id")
                .is_some()
        );
        assert!(StorageOptions::new().with("allow_http", "true").is_ok());
        assert!(
            StorageOptions::new()
                .with("google_service_account", "/k.json")
                .is_ok()
        );
    }

    #[test]
    fn only_locating_settings_are_kept_for_the_log() {
        let o = StorageOptions::from_pairs([
            ("aws_endpoint", "http://127.0.0.1:9000"),
            ("aws_region", "eu-west-1"),
            ("endpoint_url", "http://127.0.0.1:9001"),
            ("aws_default_region", "eu-west-2"),
            ("azure_storage_use_emulator", "true"),
            ("aws_allow_http", "true"),
            ("aws_secret_access_key", "s3cret"),
            ("aws_session_token", "t0ken"),
            ("azure_storage_sas_key", "sig"),
            ("google_service_account_key", "{}"),
        ])
        .unwrap();
        let kept = o.locating_only();
        let keys: Vec<&str> = kept.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "aws_allow_http",
                "aws_default_region",
                "aws_endpoint",
                "aws_region",
                "azure_storage_use_emulator",
                "endpoint_url"
            ]
        );
        assert_eq!(kept.get("aws_endpoint"), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn secrets_are_not_shown() {
        let o = StorageOptions::from_pairs([
            ("aws_access_key_id", "AKIDSECRET"),
            ("aws_region", "eu-west-1"),
        ])
        .unwrap();
        let shown = format!("{o:?}");
        assert!(!shown.contains("AKIDSECRET"), "{shown}");
        assert!(shown.contains("eu-west-1"), "{shown}");
    }
}
