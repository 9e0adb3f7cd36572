//! Reads, writes, lists and renames on a moto S3 server through the same `ObjectStores` every
//! Quiver process uses.

use futures::TryStreamExt;
use quiver_storage::object_store::{ObjectStore, ObjectStoreExt};
use quiver_storage::{Location, ObjectStores, S3TestServer, block_on};

#[test]
fn objects_round_trip_through_a_real_s3_server() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("round-trip");
    let stores = ObjectStores::new();
    let file = Location::parse("s3://round-trip/dir/a.txt").unwrap();
    let store = stores.store(&file, &server.options()).unwrap();
    let path = file.object_path().clone();
    let listed = block_on({
        let store = store.clone();
        async move {
            store.put(&path, "hello, bucket".into()).await.unwrap();
            assert_eq!(&store.get_range(&path, 7..13).await.unwrap()[..], b"bucket");
            let renamed = quiver_storage::object_store::path::Path::from("dir/b.txt");
            store.rename(&path, &renamed).await.unwrap();
            store
                .list(Some(&"dir".into()))
                .map_ok(|m| (m.location.to_string(), m.size))
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
        }
    });
    assert_eq!(listed, vec![("dir/b.txt".to_string(), 13)]);

    // A missing bucket is an error that names the location.
    let missing = Location::parse("s3://no-such-bucket/x").unwrap();
    let store = stores.store(&missing, &server.options()).unwrap();
    let path = missing.object_path().clone();
    let e = block_on(async move { store.head(&path).await }).unwrap_err();
    assert!(!e.to_string().is_empty());
}
