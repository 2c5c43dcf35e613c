//! Reports: the rendered forms of the engine's results. `monthly` is the monthly
//! availability report in every format.

pub mod monthly;
