//! Paddock's Kubernetes operator as a library: the `paddock.dev/v1alpha1` API types and the
//! artefacts generated from them. The binary (`main.rs`) only parses arguments and calls in.
#![forbid(unsafe_code)]

pub mod crd;
