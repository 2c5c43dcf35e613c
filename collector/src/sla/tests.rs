//! Scenario tests of the SLA engine (added in the next step).
