//! The agent's own /metrics. (in progress)
