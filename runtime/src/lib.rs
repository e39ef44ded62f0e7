//! Paddock runtime library.
#![forbid(unsafe_code)]
