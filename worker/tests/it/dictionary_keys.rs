//! String group keys read as dictionaries: the Parquet reader returns the same strings as
//! dictionaries, and grouping by dictionary keys gives the same groups as grouping by the
//! strings, through every path (dense table, packed, the move to the row format).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use quiver_plan::FileSplit;
use quiver_worker::io::parquet_reader::read_parquet_split;
use quiver_worker::operators::dictionary_keys::dictionary_type;
use quiver_worker::operators::group_keys::GroupKeys;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The strings of `array` (a `Utf8` array or a string dictionary), NULLs as `None`.
fn strings(array: &ArrayRef) -> Vec<Option<String>> {
    let utf8 = cast(array, &DataType::Utf8).unwrap();
    utf8.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

fn read(path: &Path, schema: Arc<Schema>, row_groups: Vec<u32>) -> Vec<RecordBatch> {
    let split = FileSplit {
        path: path.to_string_lossy().into_owned(),
        start: 0,
        end: 0,
        row_groups,
    };
    read_parquet_split(&split, schema, 100)
        .unwrap()
        .collect::<quiver_worker::Result<_>>()
        .unwrap()
}

#[test]
fn parquet_strings_read_as_dictionaries_hold_the_same_values() {
    let mut rng = StdRng::seed_from_u64(3);
    let flags: Vec<Option<&str>> = (0..1000)
        .map(|_| ["A", "N", "R", ""].get(rng.random_range(0..5)).copied())
        .collect();
    let file_schema = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, false),
        Field::new("flag", DataType::Utf8, true),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.parquet");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(400))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        file_schema.clone(),
        Some(props),
    )
    .unwrap();
    let batch = RecordBatch::try_new(
        file_schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..1000)),
            Arc::new(StringArray::from(flags.clone())),
        ],
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let wanted = Arc::new(Schema::new(vec![
        Field::new("n", DataType::Int64, false),
        Field::new("flag", dictionary_type(), true),
    ]));
    let batches = read(&path, wanted, vec![0, 1, 2]);
    let mut got = vec![];
    for b in &batches {
        assert_eq!(b.column(1).data_type(), &dictionary_type());
        got.extend(strings(b.column(1)));
    }
    let expected: Vec<Option<String>> = flags.iter().map(|f| f.map(str::to_string)).collect();
    assert_eq!(got, expected);

    // Plain-encoded strings (no dictionary in the file): the same values, as dictionaries.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checksummed.parquet");
    let schema_with = |word: DataType| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("word", word, true),
        ]))
    };
    let words = |batches: Vec<RecordBatch>| -> Vec<Option<String>> {
        batches.iter().flat_map(|b| strings(b.column(1))).collect()
    };
    let as_dictionary = read(&fixture, schema_with(dictionary_type()), vec![0]);
    assert!(
        as_dictionary
            .iter()
            .all(|b| b.column(1).data_type() == &dictionary_type())
    );
    let as_strings = read(&fixture, schema_with(DataType::Utf8), vec![0]);
    assert_eq!(words(as_dictionary), words(as_strings));
}

/// A dictionary array of `values` whose dictionary is `dictionary` (a value missing from it,
/// or `None`, is a NULL key; `dictionary` may hold NULLs and values no row uses).
fn dictionary(values: &[Option<String>], dictionary: &[Option<&str>]) -> ArrayRef {
    let keys: Vec<Option<i32>> = values
        .iter()
        .map(|v| {
            dictionary
                .iter()
                .position(|d| d.is_some() && *d == v.as_deref())
                .map(|p| p as i32)
        })
        .collect();
    Arc::new(
        DictionaryArray::<Int32Type>::try_new(
            keys.into(),
            Arc::new(StringArray::from(dictionary.to_vec())),
        )
        .unwrap(),
    )
}

#[test]
fn dictionary_keys_get_the_same_groups_as_their_strings() {
    let mut rng = StdRng::seed_from_u64(17);
    let codes = ["A", "N", "R", ""];
    let statuses = ["F", "O"];
    let many: Vec<String> = (0..80).map(|i| format!("v{i}")).collect();
    let many: Vec<Option<&str>> = many.iter().map(|s| Some(s.as_str())).collect();
    let mut column = |choices: &[&str]| -> Vec<Option<String>> {
        (0..300)
            .map(|_| {
                (!rng.random_bool(0.05))
                    .then(|| choices[rng.random_range(0..choices.len())].to_string())
            })
            .collect()
    };
    type Batch = (Vec<Option<String>>, Vec<Option<String>>);
    let a: Batch = (column(&codes), column(&statuses));
    let b: Batch = (column(&codes[..2]), column(&statuses));
    let c: Batch = (column(&["v1", "v79", "A"]), column(&["F", "v3"]));
    let d: Batch = (column(&["A", "a much longer flag"]), column(&statuses));
    let dict = |v: &[Option<String>], d: &[Option<&str>]| dictionary(v, d);
    let utf8 = |v: &[Option<String>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    // Each batch as the reader could give it: both keys dictionaries (in any order, with
    // NULL and unused values: the dense table), one dictionary and one string column, long
    // dictionaries (packed row by row), and a value too long to pack (the row format).
    let mut with_many = many.clone();
    with_many.push(Some("A"));
    with_many.push(Some("F"));
    let batches: Vec<(Batch, Vec<ArrayRef>)> = vec![
        (
            a.clone(),
            vec![
                dict(&a.0, &[Some("R"), Some("A"), Some(""), Some("N")]),
                dict(&a.1, &[Some("O"), Some("F")]),
            ],
        ),
        (
            b.clone(),
            vec![
                dict(&b.0, &[None, Some("N"), Some("X"), Some("A")]),
                dict(&b.1, &[Some("F"), Some("O"), None]),
            ],
        ),
        (
            a.clone(),
            vec![utf8(&a.0), dict(&a.1, &[Some("F"), Some("O")])],
        ),
        (
            c.clone(),
            vec![dict(&c.0, &with_many), dict(&c.1, &with_many)],
        ),
        (
            d.clone(),
            vec![
                dict(&d.0, &[Some("A"), Some("a much longer flag")]),
                dict(&d.1, &[Some("F"), Some("O")]),
            ],
        ),
        (
            b.clone(),
            vec![
                dict(&b.0, &[Some("A"), Some("N")]),
                dict(&b.1, &[Some("O"), Some("F")]),
            ],
        ),
    ];
    let mut groups = GroupKeys::new(&[DataType::Utf8, DataType::Utf8]).unwrap();
    type Key = (Option<String>, Option<String>);
    let mut assigned: Vec<(u32, Key)> = vec![];
    let mut ids = vec![];
    for ((first, second), arrays) in &batches {
        groups.intern(arrays, first.len(), &mut ids).unwrap();
        assert_eq!(ids.len(), first.len());
        for (r, &g) in ids.iter().enumerate() {
            assigned.push((g, (first[r].clone(), second[r].clone())));
        }
    }
    let distinct: HashMap<_, _> = assigned.iter().map(|(g, k)| (k.clone(), *g)).collect();
    assert_eq!(groups.len(), distinct.len());
    let keys = groups.into_arrays().unwrap();
    assert!(keys.iter().all(|k| k.data_type() == &DataType::Utf8));
    let (first, second) = (strings(&keys[0]), strings(&keys[1]));
    for (g, key) in &assigned {
        let g = *g as usize;
        assert_eq!((first[g].clone(), second[g].clone()), *key, "group {g}");
        assert_eq!(distinct[key] as usize, g);
    }
}
