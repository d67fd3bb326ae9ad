//! Audit log files (and stdin) as sources: plain or gzip (detected by magic bytes, not by name),
//! with a byte counter for progress.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const BUFFER: usize = 1 << 20;

/// A named input: a file, or stdin for `-`.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file on disk.
    Path(PathBuf),
    /// Standard input.
    Stdin,
}

impl Input {
    /// `-` is stdin, anything else a path.
    pub fn from_arg(arg: &Path) -> Self {
        if arg.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::Path(arg.to_path_buf())
        }
    }

    /// How it is named in messages (`FILE:LINE: ...`).
    pub fn display_name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "<stdin>".into(),
        }
    }

    /// Size on disk, when known (for progress).
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Stdin => None,
        }
    }

    /// Opens it for reading, decompressing gzip transparently. `read_bytes` counts the bytes taken
    /// from the underlying file (compressed bytes for gzip), for progress.
    pub fn open(&self, read_bytes: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>> {
        let raw: Box<dyn Read + Send> = match self {
            Input::Path(p) => Box::new(File::open(p).map_err(|source| Error::Open {
                path: p.clone(),
                source,
            })?),
            // Not locked: a lock cannot move to the thread that reads it; the buffer above
            // takes a megabyte per read, so the lock per read is nothing.
            Input::Stdin => Box::new(std::io::stdin()),
        };
        let mut counted = BufReader::with_capacity(
            BUFFER,
            Counting {
                inner: raw,
                read_bytes,
            },
        );
        let head = counted.fill_buf().map_err(|source| Error::Open {
            path: PathBuf::from(self.display_name()),
            source,
        })?;
        if head.starts_with(&GZIP_MAGIC) {
            Ok(Box::new(BufReader::with_capacity(
                BUFFER,
                MultiGzDecoder::new(counted),
            )))
        } else {
            Ok(Box::new(counted))
        }
    }
}

struct Counting<R> {
    inner: R,
    read_bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
