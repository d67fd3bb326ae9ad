//! Splits an input stream into JSON documents with their line numbers: one per line (NDJSON, the
//! log backend's format) or, when the first line is the start of a multi-line value (a
//! pretty-printed `EventList`, a `kubectl get --raw` dump), a stream of whole JSON values.

use std::io::BufRead;

use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Lines longer than this are rejected, not buffered (a single event is rarely above a few MiB;
/// a webhook body on one line can reach the API server's default 64 MiB batch limit).
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// One unit handed to the decoder.
pub enum Document<'a> {
    /// JSON text starting at `line`.
    Json {
        /// 1-based line number of its first byte.
        line: usize,
        /// The document.
        bytes: &'a [u8],
    },
    /// Something at `line` that is not a document at all.
    Invalid {
        /// 1-based line number.
        line: usize,
        /// Why it was skipped.
        reason: String,
    },
}

/// Calls `each` with every document of `input`, in order.
pub fn for_each_document(
    input: &mut dyn BufRead,
    mut each: impl FnMut(Document<'_>),
) -> Result<()> {
    let mut buf = Vec::with_capacity(64 << 10);
    let mut line = 0usize;
    let mut seen_content = false;
    loop {
        line += 1;
        let read = |source| Error::Read { line, source };
        // A line wholly in the reader's buffer is handed on from there; only one that crosses
        // the end of the buffer is gathered in `buf` first.
        let available = fill(input).map_err(read)?;
        let whole = memchr(available)
            .map(|i| i + 1)
            .filter(|&n| n <= MAX_LINE_BYTES);
        let (raw, in_buffer) = match whole {
            Some(n) => (&available[..n], true),
            None => {
                buf.clear();
                let (n, overflow) = read_line(input, &mut buf).map_err(read)?;
                if n == 0 {
                    return Ok(());
                }
                if overflow {
                    each(Document::Invalid {
                        line,
                        reason: format!("line longer than {} MiB", MAX_LINE_BYTES >> 20),
                    });
                    continue;
                }
                (buf.as_slice(), false)
            }
        };
        let consumed = raw.len();
        let text = trim(raw);
        if !text.is_empty() && !seen_content {
            seen_content = true;
            if starts_multi_line_value(text) {
                let mut all = raw.to_vec();
                if in_buffer {
                    input.consume(consumed);
                }
                input.read_to_end(&mut all).map_err(read)?;
                whole_values(&all, line, &mut each);
                return Ok(());
            }
        }
        if !text.is_empty() {
            each(Document::Json { line, bytes: text });
        }
        if in_buffer {
            input.consume(consumed);
        }
    }
}

/// The reader's buffered bytes, reading more when it has none; empty at the end.
fn fill(input: &mut dyn BufRead) -> std::io::Result<&[u8]> {
    loop {
        match input.fill_buf() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Re-borrowed: returning the first borrow from inside the loop does not compile.
            Ok(_) => return input.fill_buf(),
            Err(e) => return Err(e),
        }
    }
}

/// Reads up to and including the next `\n`, keeping at most [`MAX_LINE_BYTES`]; the rest of an
/// overlong line is read and dropped. Returns bytes consumed and whether the line overflowed.
fn read_line(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut overflow = false;
    loop {
        let available = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed, overflow));
        }
        let (chunk, done) = match memchr(available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let take = chunk.len();
        if !overflow && buf.len() + take <= MAX_LINE_BYTES {
            buf.extend_from_slice(chunk);
        } else {
            overflow = true;
            buf.clear();
        }
        input.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, overflow));
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The first line opens a JSON value that it does not close.
fn starts_multi_line_value(text: &[u8]) -> bool {
    matches!(text.first(), Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err_and(|e| e.is_eof())
}

/// Splits a whole input into consecutive JSON values; `first_line` is the line `all` starts at.
fn whole_values(all: &[u8], first_line: usize, each: &mut impl FnMut(Document<'_>)) {
    let line_at =
        |offset: usize| first_line + all[..offset].iter().filter(|&&b| b == b'\n').count();
    let mut stream = serde_json::Deserializer::from_slice(all).into_iter::<&RawValue>();
    loop {
        let before = stream.byte_offset();
        match stream.next() {
            None => return,
            Some(Ok(value)) => {
                let start = before
                    + all[before..]
                        .iter()
                        .take_while(|b| b.is_ascii_whitespace())
                        .count();
                each(Document::Json {
                    line: line_at(start),
                    bytes: value.get().as_bytes(),
                });
            }
            Some(Err(e)) => {
                // Past a syntax error there is no telling where the next value starts.
                let line = first_line + e.line().saturating_sub(1);
                each(Document::Invalid {
                    line,
                    reason: format!("not JSON: {e}; the rest of the input is skipped"),
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents of `input`, the same whatever the reader's buffer size: lines that cross
    /// the end of the buffer are gathered, lines within it are handed on from it.
    fn collect(input: &[u8]) -> Vec<(usize, String)> {
        let read = |capacity| {
            let mut out = Vec::new();
            let mut reader = std::io::BufReader::with_capacity(capacity, input);
            for_each_document(&mut reader, |d| match d {
                Document::Json { line, bytes } => {
                    out.push((line, String::from_utf8_lossy(bytes).into()))
                }
                Document::Invalid { line, reason } => out.push((line, format!("!{reason}"))),
            })
            .expect("in-memory read");
            out
        };
        let out = read(7);
        for capacity in [1, 12, 1 << 20] {
            assert_eq!(read(capacity), out, "buffer of {capacity} bytes");
        }
        out
    }

    #[test]
    fn ndjson_lines_keep_their_numbers() {
        let got = collect(b"{\"a\":1}\n\n  {\"b\":2}\r\n{\"c\"\n");
        assert_eq!(
            got,
            [
                (1, "{\"a\":1}".into()),
                (3, "{\"b\":2}".into()),
                (4, "{\"c\"".into())
            ]
        );
    }

    #[test]
    fn pretty_printed_documents() {
        let got = collect(b"\n{\n  \"kind\": \"EventList\",\n  \"items\": []\n}\n{\"x\": 1}\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 2);
        assert!(got[0].1.contains("EventList"));
        assert_eq!(got[1], (6, "{\"x\": 1}".into()));
    }

    #[test]
    fn broken_pretty_document_is_reported_once() {
        let got = collect(b"{\n \"a\": 1,\n nope\n}\n");
        assert_eq!(got.len(), 1);
        assert!(got[0].1.starts_with("!not JSON"), "{got:?}");
    }
}
