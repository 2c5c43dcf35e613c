//! attest-config: the configuration model shared by the agent and the collector,
//! its strict validation, and the wire types that cross the network.
//!
//! Invariants:
//! - This crate does no I/O besides reading the configuration file it is asked to load
//!   and the token files that file names (`token_file`, `admin_token_file`), and the web
//!   configuration file (`web`, YAML) a listener is given.
//! - A value of a model type has passed validation: durations are positive, zones exist
//!   in the tz database, percentages are in (0, 100], ids are unique and referenced ids exist.
//! - `wire` is the only module whose types cross the network; changing them is a protocol
//!   change and the golden-file test must be updated deliberately.

pub mod evidence;
pub mod fleet;
pub mod http;
pub mod load;
pub mod model;
pub mod units;
pub mod web;
pub mod wire;

pub use load::{
    ConfigError, ConfigErrors, EXIT_CONFIG_INVALID, load_agent, load_collector, parse_agent,
    parse_checks, parse_collector, summary_agent, summary_collector, warnings_collector,
};
pub use model::*;
