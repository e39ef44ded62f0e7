//! End-to-end harness for Paddock on a real control plane.
#![forbid(unsafe_code)]
