//! Configuration of the resource server: which issuers are trusted, where their keys live, and how this server
//! names itself in RFC 9728 metadata. The types are the config file's, defined in the contract.

pub use paddock_contract::config::{AuthConfig, IssuerConfig, JwksSource};
