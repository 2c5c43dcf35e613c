//! Transport: batches from the spool to the collector. (in progress)

pub mod backoff;
