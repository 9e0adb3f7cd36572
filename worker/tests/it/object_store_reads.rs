//! Splits read from a real moto S3 server give exactly what the same splits of the same bytes
//! give from a local file: text cut at arbitrary offsets (line boundaries, CRLF, long lines,
//! a last line without '\n'), Parquet row groups, and whole CSV files. Skipped without moto.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use quiver_plan::{CsvOptions, FileSplit, ScanNode};
use quiver_storage::{ObjectStores, S3TestServer};
use quiver_worker::io::csv_reader::read_csv_split_in;
use quiver_worker::io::input_storage::InputStorage;
use quiver_worker::io::parquet_reader::read_parquet_split_in;
use quiver_worker::io::text_reader::TextSplitReader;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn split(path: &str, start: u64, end: u64, row_groups: Vec<u32>) -> FileSplit {
    FileSplit {
        path: path.into(),
        start,
        end,
        row_groups,
    }
}

fn lines(split: &FileSplit, storage: &InputStorage) -> Vec<(String, i64)> {
    let reader =
        TextSplitReader::open_in(split, ScanNode::text_schema_with_positions(), 97, storage)
            .unwrap();
    let mut out = vec![];
    for b in reader {
        let b = b.unwrap();
        let text = b.column(0).as_string::<i32>();
        let offsets = b.column(2).as_primitive::<Int64Type>();
        out.extend((0..b.num_rows()).map(|i| (text.value(i).to_string(), offsets.value(i))));
    }
    out
}

#[test]
fn text_parquet_and_csv_splits_read_the_same_from_s3_and_local_files() {
    let Some(server) = S3TestServer::start() else {
        return;
    };
    server.create_bucket("inputs");
    let storage = InputStorage {
        stores: Arc::new(ObjectStores::new()),
        options: server.options(),
    };
    let dir = tempfile::tempdir().unwrap();

    // Text: random lines, some long, some CRLF, the last without '\n'.
    let mut rng = StdRng::seed_from_u64(3);
    let mut text = String::new();
    for i in 0..3000 {
        match rng.random_range(0..10) {
            0 => {}
            1 => text.push_str(&"y".repeat(rng.random_range(1000..20_000))),
            _ => text.push_str(&format!(
                "line {i} {}",
                "w ".repeat(rng.random_range(0..30))
            )),
        }
        text.push_str(if i % 7 == 0 { "\r\n" } else { "\n" });
    }
    text.push_str("last line");
    let local = dir.path().join("t.txt");
    std::fs::write(&local, &text).unwrap();
    let local = local.to_string_lossy().to_string();
    server.put("s3://inputs/t.txt", text.clone().into_bytes());
    let size = text.len() as u64;
    for pieces in [1u64, 2, 7, 33] {
        let mut from_s3 = vec![];
        let mut from_file = vec![];
        let cuts: Vec<u64> = (0..=pieces).map(|i| size * i / pieces).collect();
        for w in cuts.windows(2) {
            let s3 = lines(&split("s3://inputs/t.txt", w[0], w[1], vec![]), &storage);
            let file = lines(&split(&local, w[0], w[1], vec![]), &storage);
            assert_eq!(s3, file, "split [{}, {})", w[0], w[1]);
            from_s3.extend(s3);
            from_file.extend(file);
        }
        assert_eq!(from_s3.len(), text.split('\n').count(), "{pieces} pieces");
        assert_eq!(from_s3, from_file);
    }

    // Parquet: every row group on its own, and two together.
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from_iter_values(0..10_000))],
    )
    .unwrap();
    let mut bytes = Vec::new();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1000))
        .build();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema.clone(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    server.put("s3://inputs/v.parquet", bytes);
    for groups in [vec![0], vec![3], vec![9], vec![2, 5]] {
        let got: Vec<i64> = read_parquet_split_in(
            &split("s3://inputs/v.parquet", 0, 0, groups.clone()),
            schema.clone(),
            300,
            &storage,
        )
        .unwrap()
        .flat_map(|b| {
            b.unwrap()
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
        let want: Vec<i64> = groups
            .iter()
            .flat_map(|&g| i64::from(g) * 1000..(i64::from(g) + 1) * 1000)
            .collect();
        assert_eq!(got, want, "row groups {groups:?}");
    }
    let e = read_parquet_split_in(
        &split("s3://inputs/v.parquet", 0, 0, vec![10]),
        schema.clone(),
        300,
        &storage,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("s3://inputs/v.parquet") && e.contains("row group 10"),
        "{e}"
    );

    // CSV: the whole object.
    let mut csv = String::from("a\n");
    for i in 0..5000 {
        csv.push_str(&format!("{i}\n"));
    }
    server.put("s3://inputs/c.csv", csv.into_bytes());
    let csv_schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    let sum: i64 = read_csv_split_in(
        &split("s3://inputs/c.csv", 0, 0, vec![]),
        csv_schema,
        &CsvOptions::default(),
        512,
        &storage,
    )
    .unwrap()
    .map(|b| {
        b.unwrap()
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .sum::<i64>()
    })
    .sum();
    assert_eq!(sum, (0..5000).sum::<i64>());

    // A missing object is an error naming its URL.
    let e = TextSplitReader::open_in(
        &split("s3://inputs/absent.txt", 0, 10, vec![]),
        ScanNode::text_schema(),
        10,
        &storage,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("s3://inputs/absent.txt"), "{e}");
}
