//! [`FlightFramer`]: cuts the Arrow IPC streams a map output stores (one or more per bucket, a
//! run of buckets back to back) into Flight messages without decoding them, so a worker serves
//! shuffle data as the bytes it wrote — no decode into arrays and re-encode on the serving side.
//!
//! Owns only the framing: the continuation marker, the metadata length, and the body length
//! read from the (verified) flatbuffer header. What the messages mean is the fetching side's
//! business (arrow-flight's decoder). It must not read files or touch the network.

use arrow::ipc::{MessageHeader, root_as_message};
use arrow_flight::FlightData;
use bytes::Bytes;

/// The marker that starts every message of an IPC stream written since Arrow 0.15.
const CONTINUATION: u32 = 0xFFFF_FFFF;

/// Turns stored IPC bytes into Flight messages for one `DoGet` answer: the schema once (the
/// first stream's; a later stream repeats it and is checked against it, not sent), then every
/// stream's dictionary and record batches in order. End-of-stream markers are not sent.
#[derive(Debug, Default)]
pub struct FlightFramer {
    schema: Option<Bytes>,
}

impl FlightFramer {
    /// The Flight messages of the IPC streams in `bytes`, which continue those of earlier
    /// calls. Bodies are slices of `bytes`, not copies. An error says what is malformed and
    /// at which byte.
    pub fn frames(&mut self, bytes: Bytes) -> Result<Vec<FlightData>, String> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let word = u32_at(&bytes, pos)?;
            let (meta_len, meta_start) = if word == CONTINUATION {
                (u32_at(&bytes, pos + 4)? as usize, pos + 8)
            } else {
                // The pre-0.15 format: the length without a marker in front.
                (word as usize, pos + 4)
            };
            if meta_len == 0 {
                // End of one stream; another may follow.
                pos = meta_start;
                continue;
            }
            let meta_end = within(&bytes, meta_start, meta_len, "message header")?;
            let header = bytes.slice(meta_start..meta_end);
            let message = root_as_message(&header)
                .map_err(|e| format!("message header at byte {pos}: {e}"))?;
            let body_len = usize::try_from(message.bodyLength())
                .map_err(|_| format!("message at byte {pos}: negative body length"))?;
            let body_end = within(&bytes, meta_end, body_len, "message body")?;
            match message.header_type() {
                MessageHeader::Schema => match &self.schema {
                    None => {
                        self.schema = Some(header.clone());
                        out.push(FlightData {
                            data_header: header,
                            ..FlightData::default()
                        });
                    }
                    Some(first) if *first == header => {}
                    Some(_) => {
                        return Err(format!(
                            "the stream at byte {pos} has another schema than the first"
                        ));
                    }
                },
                MessageHeader::RecordBatch | MessageHeader::DictionaryBatch => {
                    if self.schema.is_none() {
                        return Err(format!("a batch at byte {pos} comes before any schema"));
                    }
                    out.push(FlightData {
                        data_header: header,
                        data_body: bytes.slice(meta_end..body_end),
                        ..FlightData::default()
                    });
                }
                other => {
                    return Err(format!(
                        "message at byte {pos} is a {other:?}, not a schema or batch"
                    ));
                }
            }
            pos = body_end;
        }
        Ok(out)
    }
}

fn u32_at(bytes: &[u8], pos: usize) -> Result<u32, String> {
    bytes
        .get(pos..pos + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("truncated at byte {pos} of {}", bytes.len()))
}

/// The end of `len` bytes from `start`, if they are all in `bytes`.
fn within(bytes: &[u8], start: usize, len: usize, what: &str) -> Result<usize, String> {
    start
        .checked_add(len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            format!(
                "{what} of {len} bytes at byte {start} runs past the end ({} bytes)",
                bytes.len()
            )
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int32Type, Schema};
    use arrow::ipc::writer::StreamWriter;
    use arrow::record_batch::RecordBatch;
    use arrow_flight::decode::FlightRecordBatchStream;
    use futures::TryStreamExt;

    use super::*;

    fn batch(schema: &Arc<Schema>, start: i64, words: &[&str]) -> RecordBatch {
        let n = words.len() as i64;
        let dict: DictionaryArray<Int32Type> = words.iter().copied().collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(start..start + n)),
                Arc::new(StringArray::from(words.to_vec())),
                Arc::new(dict),
            ],
        )
        .unwrap()
    }

    fn stream(schema: &Arc<Schema>, batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, schema).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    }

    /// Two buckets — the first written as two streams, as a map task that spilled writes it —
    /// framed in two runs and decoded by arrow-flight's own client decoder are the batches
    /// that were written, dictionaries included.
    #[tokio::test]
    async fn framed_streams_decode_to_the_batches_written() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("word", DataType::Utf8, false),
            Field::new(
                "tag",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
        ]));
        let written = [
            batch(&schema, 0, &["a", "b", "a"]),
            batch(&schema, 3, &["c"]),
            batch(&schema, 4, &["d", "d", "e", "f"]),
            batch(&schema, 8, &["g", "a"]),
        ];
        let mut first_run = stream(&schema, &written[..1]);
        first_run.extend(stream(&schema, &written[1..3]));
        let second_run = stream(&schema, &written[3..]);
        let mut framer = FlightFramer::default();
        let mut frames = framer.frames(Bytes::from(first_run)).unwrap();
        frames.extend(framer.frames(Bytes::from(second_run)).unwrap());
        // The schema is sent once, first (arrow-flight's decoder refuses a second one).
        let schemas = frames
            .iter()
            .filter(|f| {
                arrow::ipc::root_as_message(&f.data_header)
                    .unwrap()
                    .header_type()
                    == MessageHeader::Schema
            })
            .count();
        assert_eq!(schemas, 1);
        assert_eq!(
            arrow::ipc::root_as_message(&frames[0].data_header)
                .unwrap()
                .header_type(),
            MessageHeader::Schema
        );
        let got: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            futures::stream::iter(frames.into_iter().map(Ok)),
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(got, written);
    }

    #[test]
    fn malformed_bytes_are_an_error_naming_where() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..100))],
        )
        .unwrap();
        let bytes = stream(&schema, &[b]);
        // Cut inside the record batch's body, and inside a length word.
        for cut in [bytes.len() - 20, 6] {
            let err = FlightFramer::default()
                .frames(Bytes::copy_from_slice(&bytes[..cut]))
                .unwrap_err();
            assert!(err.contains("byte"), "{err}");
        }
        // A header that is not a flatbuffer message.
        let mut garbage = vec![0xff, 0xff, 0xff, 0xff, 16, 0, 0, 0];
        garbage.extend([0x5a; 16]);
        assert!(
            FlightFramer::default()
                .frames(Bytes::from(garbage))
                .is_err()
        );
        // A batch with no schema before it: the second message alone.
        let framer_bytes = Bytes::from(bytes);
        let mut framer = FlightFramer::default();
        let all = framer.frames(framer_bytes.clone()).unwrap();
        assert_eq!(all.len(), 2, "a schema and one batch");
        let schema_len = 8 + all[0].data_header.len();
        let err = FlightFramer::default()
            .frames(framer_bytes.slice(schema_len..))
            .unwrap_err();
        assert!(err.contains("before any schema"), "{err}");
    }
}
