//! Dictionary encoding of a text column, for the tests that run once per distinct value.
//!
//! Arrow's cast to a dictionary hashes every value in full and copies it into a builder; the
//! rule engine encodes about ten columns of every batch, and that was a fifth of its time. Here
//! a row equal to the row before takes its key without hashing (audit traffic comes in runs:
//! a controller's watch, a kubelet's lease renewals), a value is hashed once with xxh3 and
//! compared in place, and only the distinct values are copied, once, at the end.

use std::sync::Arc;

use arrow::array::{Array, DictionaryArray, Int32Array, StringArray};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::Int32Type;
use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

/// `strings` as `Dictionary(Int32, Utf8)`: the same values, nulls where they are null.
pub(crate) fn encode(strings: &StringArray) -> DictionaryArray<Int32Type> {
    let offsets = strings.value_offsets();
    let data = strings.value_data();
    let value = |row: usize| &data[offsets[row] as usize..offsets[row + 1] as usize];
    // Per distinct value: where it is in `data`, and its hash.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut hashes: Vec<u64> = Vec::new();
    let mut table: HashTable<u32> = HashTable::new();
    let mut keys: Vec<i32> = Vec::with_capacity(strings.len());
    let mut previous: Option<(&[u8], i32)> = None;
    for row in 0..strings.len() {
        if strings.is_null(row) {
            keys.push(0);
            continue;
        }
        let v = value(row);
        if let Some((p, key)) = previous
            && p == v
        {
            keys.push(key);
            continue;
        }
        let hash = xxh3_64(v);
        let key = *table
            .entry(
                hash,
                |&k| {
                    let (start, end) = spans[k as usize];
                    &data[start..end] == v
                },
                |&k| hashes[k as usize],
            )
            .or_insert_with(|| {
                spans.push((offsets[row] as usize, offsets[row + 1] as usize));
                hashes.push(hash);
                (spans.len() - 1) as u32
            })
            .get();
        keys.push(key as i32);
        previous = Some((v, key as i32));
    }
    let mut bytes = Vec::new();
    let mut value_offsets = Vec::with_capacity(spans.len() + 1);
    value_offsets.push(0i32);
    for &(start, end) in &spans {
        bytes.extend_from_slice(&data[start..end]);
        value_offsets.push(bytes.len() as i32);
    }
    let values = StringArray::new(
        OffsetBuffer::new(ScalarBuffer::from(value_offsets)),
        bytes.into(),
        None,
    );
    let keys = Int32Array::new(keys.into(), strings.nulls().cloned());
    DictionaryArray::new(keys, Arc::new(values))
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::compute::cast;

    use super::*;
    use crate::eval::dictionary_type;

    #[test]
    fn encodes_the_same_values_as_arrow() {
        let rows = [
            Some("get"),
            Some("get"),
            None,
            Some("list"),
            Some(""),
            Some("get"),
            None,
            Some("list"),
            Some("watch"),
            Some(""),
            Some("system:serviceaccount:kube-system:replicaset-controller"),
            Some("get"),
        ];
        let strings = StringArray::from(rows.to_vec());
        let encoded = encode(&strings);
        let decoded = cast(&encoded, &arrow::datatypes::DataType::Utf8).expect("cast");
        assert_eq!(decoded.as_string::<i32>(), &strings);
        // One entry per distinct value, in the order first seen.
        let values = encoded.values().as_string::<i32>();
        let distinct: Vec<_> = values.iter().flatten().collect();
        assert_eq!(
            distinct,
            [
                "get",
                "list",
                "",
                "watch",
                "system:serviceaccount:kube-system:replicaset-controller"
            ]
        );
        assert_eq!(encoded.data_type(), &dictionary_type());
        // A slice reads the values it covers.
        let sliced = strings.slice(3, 6);
        let decoded = cast(&encode(&sliced), &arrow::datatypes::DataType::Utf8).expect("cast");
        assert_eq!(decoded.as_string::<i32>(), &sliced);
    }
}
