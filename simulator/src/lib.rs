//! hush-sim
