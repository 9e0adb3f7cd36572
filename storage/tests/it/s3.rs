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
        let mut w = ObjectWriter::create(
            c.store().clone(),
            c.attempt_file(partition, attempt).unwrap(),
        );
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

#[test]
fn ranged_reads_listing_and_parquet_footers_through_a_real_s3_server() {
    use std::io::{Read, Seek, SeekFrom};
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;
    use parquet::file::reader::ChunkReader;
    use quiver_storage::{ObjectChunkReader, StorageOptions, StoredObject, list_objects};

    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("adapters");
    let stores = ObjectStores::new();
    let put = |url: &str, bytes: Vec<u8>| server.put(url, bytes);

    // Ranged reads across the reader's 8 MiB fetches.
    let content: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 253) as u8).collect();
    put("s3://adapters/data/blob.bin", content.clone());
    let location = Location::parse("s3://adapters/data/blob.bin").unwrap();
    let object = StoredObject::open(&stores, &location, &server.options()).unwrap();
    assert_eq!(object.size(), content.len() as u64);
    assert_eq!(&object.read_range(5..9).unwrap()[..], &content[5..9]);
    let mut reader = object.reader((8 << 20) - 3);
    let mut across = [0u8; 6];
    reader.read_exact(&mut across).unwrap();
    assert_eq!(across, content[(8 << 20) - 3..(8 << 20) + 3]);
    reader.seek(SeekFrom::Start(1)).unwrap();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert_eq!(all, &content[1..]);

    // A Parquet file read through the ChunkReader: footer, row groups, values.
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from_iter_values(0..5000))],
    )
    .unwrap();
    let mut bytes = Vec::new();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1000))
        .build();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    put("s3://adapters/data/v.parquet", bytes.clone());
    let location = Location::parse("s3://adapters/data/v.parquet").unwrap();
    let chunks =
        ObjectChunkReader::new(StoredObject::open(&stores, &location, &server.options()).unwrap());
    assert_eq!(&chunks.get_bytes(0, 4).unwrap()[..], b"PAR1");
    let builder = ParquetRecordBatchReaderBuilder::try_new(chunks).unwrap();
    assert_eq!(builder.metadata().num_row_groups(), 5);
    let rows: usize = builder
        .with_row_groups(vec![1, 3])
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 2000);

    // Listing: a prefix, a glob, skipped names, and a missing name.
    put("s3://adapters/data/_SUCCESS", vec![]);
    let names = |text: &str| -> Vec<String> {
        list_objects(&stores, text, &server.options())
            .unwrap()
            .into_iter()
            .map(|o| o.location.to_string())
            .collect()
    };
    assert_eq!(
        names("s3://adapters/data/"),
        [
            "s3://adapters/data/blob.bin",
            "s3://adapters/data/v.parquet"
        ]
    );
    assert_eq!(
        names("s3://adapters/*/*.parquet"),
        ["s3://adapters/data/v.parquet"]
    );
    assert_eq!(
        names("s3://adapters/data/v.parquet"),
        ["s3://adapters/data/v.parquet"]
    );
    let e = list_objects(&stores, "s3://adapters/nothing", &server.options()).unwrap_err();
    assert!(
        e.is_not_found() && e.to_string().contains("s3://adapters/nothing"),
        "{e}"
    );
    let _ = StorageOptions::new();
}
