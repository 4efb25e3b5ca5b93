//! hush-drivers
