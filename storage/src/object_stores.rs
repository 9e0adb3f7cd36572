//! [`ObjectStores`]: one process's `object_store` clients, built on first use per store and
//! per set of options.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::{ClientConfigKey, ClientOptions};

use crate::{Location, Result, Scheme, StorageError, StorageOptions};

/// Clients kept at most (one per store and set of options).
const MAX_CACHED_STORES: usize = 64;

/// Builds and caches object store clients. Credentials come from the process environment
/// (the standard variables of each cloud), then from the [`StorageOptions`] a job carries.
///
/// Cheap to share: clone the `Arc` it usually lives in.
#[derive(Default)]
pub struct ObjectStores {
    cache: Mutex<HashMap<(String, StorageOptions), Arc<dyn ObjectStore>>>,
}

impl std::fmt::Debug for ObjectStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectStores")
    }
}

impl ObjectStores {
    /// No stores built yet.
    pub fn new() -> Self {
        ObjectStores::default()
    }

    /// The store `location` lives in, configured from the environment and `options`.
    pub fn store(
        &self,
        location: &Location,
        options: &StorageOptions,
    ) -> Result<Arc<dyn ObjectStore>> {
        let key = (cache_key(location), options.clone());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = cache.get(&key) {
            return Ok(store.clone());
        }
        let store = build(location, options)?;
        // Jobs choose buckets and options, so the set is not bounded by this process: past
        // the limit, start afresh (clients in use stay valid; dropped ones are rebuilt).
        if cache.len() >= MAX_CACHED_STORES {
            cache.clear();
        }
        cache.insert(key, store.clone());
        Ok(store)
    }
}

/// What one client serves: the store's scheme and authority, and for Azure — whose client is
/// bound to one container — the container too (`abfss://container@account...` names it as the
/// user, `https://account.blob.core.windows.net/container/...` as the first path segment).
fn cache_key(location: &Location) -> String {
    let key = location.store_key();
    if location.scheme() != Scheme::Azure {
        return key;
    }
    let url = location.url();
    let container = match url.username() {
        "" => url
            .path_segments()
            .and_then(|mut s| s.next())
            .unwrap_or_default(),
        user => user,
    };
    format!("{key} container {container}")
}

fn build(location: &Location, options: &StorageOptions) -> Result<Arc<dyn ObjectStore>> {
    // reqwest is built without a default TLS crypto provider; use ring, as the rest of
    // Quiver does. A provider installed earlier (by anyone) is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let failed = |e: object_store::Error| StorageError::Store {
        location: location.store_key(),
        message: format!("cannot configure the store: {e}"),
    };
    let url = location.store_key();
    let store: Arc<dyn ObjectStore> = match location.scheme() {
        Scheme::Local => Arc::new(LocalFileSystem::new()),
        Scheme::S3 => {
            let mut b = AmazonS3Builder::from_env().with_url(&url);
            for (k, v) in options.iter() {
                if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.build().map_err(failed)?)
        }
        Scheme::Gcs => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(&url);
            for (k, v) in options.iter() {
                if let Ok(key) = k.parse::<GoogleConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.build().map_err(failed)?)
        }
        Scheme::Azure => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(location.url().as_str());
            for (k, v) in options.iter() {
                if let Ok(key) = k.parse::<AzureConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.build().map_err(failed)?)
        }
        Scheme::Http => {
            let mut client = ClientOptions::new().with_allow_http(url.starts_with("http://"));
            for (k, v) in options.iter() {
                if let Ok(key) = k.parse::<ClientConfigKey>() {
                    client = client.with_config(key, v);
                }
            }
            Arc::new(
                HttpBuilder::new()
                    .with_url(url)
                    .with_client_options(client)
                    .build()
                    .map_err(failed)?,
            )
        }
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn local_files_go_through_the_same_interface() {
        let dir = tempfile::tempdir().unwrap();
        let file = Location::parse(&dir.path().join("a.txt").to_string_lossy()).unwrap();
        let stores = ObjectStores::new();
        let store = stores.store(&file, &StorageOptions::new()).unwrap();
        let path = file.object_path().clone();
        crate::block_on(async move {
            store.put(&path, "hello".into()).await.unwrap();
            let got = store.get_range(&path, 1..4).await.unwrap();
            assert_eq!(&got[..], b"ell");
        });
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "hello"
        );
    }

    #[test]
    fn azure_containers_of_one_account_get_clients_of_their_own() {
        let key = |u: &str| cache_key(&Location::parse(u).unwrap());
        assert_ne!(
            key("abfss://c1@acct.dfs.core.windows.net/in/"),
            key("abfss://c2@acct.dfs.core.windows.net/out/")
        );
        assert_ne!(
            key("https://acct.blob.core.windows.net/c1/in/"),
            key("https://acct.blob.core.windows.net/c2/out/")
        );
        assert_eq!(key("s3://b/x"), key("s3://b/y"));
    }
}
