//! Parquet page checksums are verified where a file has them: a byte flipped inside a page is
//! an error naming the file, never a silently wrong value. `tests/fixtures/checksummed.parquet`
//! was written by pyarrow with `write_page_checksum=True` (1000 rows: `id` 0..999 and a word;
//! uncompressed, plain encoding, 2 KiB pages); parquet-rs does not write checksums itself.

use std::path::Path;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use parquet::file::reader::{FileReader, SerializedFileReader};
use quiver_plan::FileSplit;
use quiver_worker::io::parquet_reader::read_parquet_split;

fn ids(path: &Path) -> quiver_worker::Result<Vec<i64>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("word", DataType::Utf8, true),
    ]));
    let split = FileSplit {
        path: path.to_string_lossy().into_owned(),
        start: 0,
        end: 0,
        row_groups: vec![0],
    };
    let mut out = Vec::new();
    for batch in read_parquet_split(&split, schema, 256)? {
        out.extend(batch?.column(0).as_primitive::<Int64Type>().values().iter());
    }
    Ok(out)
}

#[test]
fn a_flipped_byte_in_a_checksummed_page_is_an_error() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checksummed.parquet");
    assert_eq!(ids(&fixture).unwrap(), (0..1000).collect::<Vec<i64>>());

    // The last byte of the `id` column's data: inside its last page, not a header.
    let chunk_end = {
        let reader = SerializedFileReader::new(std::fs::File::open(&fixture).unwrap()).unwrap();
        let column = reader.metadata().row_group(0).column(0).clone();
        column.data_page_offset() as usize + column.compressed_size() as usize
    };
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.parquet");
    let mut bytes = std::fs::read(&fixture).unwrap();
    bytes[chunk_end - 1] ^= 0x01;
    std::fs::write(&corrupt, bytes).unwrap();
    let err = ids(&corrupt).unwrap_err().to_string();
    assert!(
        err.contains("corrupt.parquet") && err.contains("CRC checksum mismatch"),
        "{err}"
    );
}
