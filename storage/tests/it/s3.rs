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

/// The output commit on a bucket: attempts written through `ObjectWriter`, only the chosen
/// ones visible after the commit, refusal of existing data, overwrite, and abort.
#[test]
fn the_output_commit_works_on_a_bucket() {
    use quiver_storage::{ObjectWriter, OutputCommit, TaskFile, WriteMode};
    use std::io::Write;
    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("commit");
    let stores = ObjectStores::new();
    let options = server.options();
    let write = |c: &OutputCommit, partition: u32, attempt: u32, text: &str| {
        let mut w = ObjectWriter::create(c.store().clone(), c.attempt_file(partition, attempt));
        w.write_all(text.as_bytes()).unwrap();
        w.finish().unwrap();
    };
    let list = |stores: &ObjectStores| -> Vec<String> {
        let root = Location::parse("s3://commit/out").unwrap();
        let store = stores.store(&root, &server.options()).unwrap();
        let mut names: Vec<String> = block_on(async move {
            store
                .list(Some(&"out".into()))
                .map_ok(|m| m.location.to_string())
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
        });
        names.sort();
        names
    };

    let first = OutputCommit::new(&stores, "s3://commit/out", "first", &options).unwrap();
    write(&first, 0, 1, "first 0");
    write(&first, 0, 2, "first 0, the backup");
    write(&first, 1, 1, "first 1");
    let files = [
        TaskFile {
            partition: 0,
            attempt: 1,
        },
        TaskFile {
            partition: 1,
            attempt: 1,
        },
    ];
    block_on(async move {
        first.check_destination(WriteMode::ErrorIfExists).await?;
        first.commit(&files, WriteMode::ErrorIfExists, false).await
    })
    .unwrap();
    assert_eq!(
        list(&stores),
        [
            "out/_SUCCESS",
            "out/part-00000.parquet",
            "out/part-00001.parquet"
        ]
    );

    // Existing data is refused; overwriting replaces it only at the commit.
    let second = OutputCommit::new(&stores, "s3://commit/out", "second", &options).unwrap();
    let refused = block_on({
        let c = OutputCommit::new(&stores, "s3://commit/out", "second", &options).unwrap();
        async move { c.check_destination(WriteMode::ErrorIfExists).await }
    });
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("already holds data")
    );
    write(&second, 0, 5, "second 0");
    let one = [TaskFile {
        partition: 0,
        attempt: 5,
    }];
    block_on(async move { second.commit(&one, WriteMode::Overwrite, false).await }).unwrap();
    assert_eq!(list(&stores), ["out/_SUCCESS", "out/part-00000.parquet"]);
    let part = Location::parse("s3://commit/out/part-00000.parquet").unwrap();
    let store = stores.store(&part, &options).unwrap();
    let body = block_on(async move {
        let got = store.get(part.object_path()).await.unwrap();
        got.bytes().await.unwrap()
    });
    assert_eq!(&body[..], b"second 0");

    // An aborted job leaves nothing behind.
    let failed = OutputCommit::new(&stores, "s3://commit/out", "failed", &options).unwrap();
    write(&failed, 3, 1, "never visible");
    block_on(async move { failed.abort().await }).unwrap();
    assert_eq!(list(&stores), ["out/_SUCCESS", "out/part-00000.parquet"]);

    // A bucket that does not exist fails the check at submit.
    let nowhere = OutputCommit::new(&stores, "s3://no-such-bucket/out", "j", &options).unwrap();
    let e = block_on(async move { nowhere.check_destination(WriteMode::ErrorIfExists).await })
        .unwrap_err()
        .to_string();
    assert!(e.contains("s3://no-such-bucket/out"), "{e}");
}
