//! Durable on-disk spool. (in progress)
