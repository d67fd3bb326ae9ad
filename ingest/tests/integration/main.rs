//! Integration tests of the ingest crate: the webhook routes in-process.

mod webhook;
