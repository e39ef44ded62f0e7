//! Protocol facts that the runtime serves and the operator relies on: MCP's versions and headers, the A2A
//! endpoint's version, headers and error codes, JSON-RPC's error codes and the MCP tools.

use serde::{Deserialize, Serialize};

/// MCP over Streamable HTTP, in two eras on one endpoint: the handshake era (`initialize`, then a session) and
/// the stateless era (2026-07-28: every request carries its version and capabilities in `_meta`).
pub mod mcp {
    /// Versions reached through the `initialize` handshake, newest first.
    pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
    /// Versions of the stateless era, reached through `server/discover` and per-request `_meta`, newest first.
    pub const STATELESS_VERSIONS: &[&str] = &["2026-07-28"];
    /// The header carrying a session's id after `initialize` (handshake era).
    pub const SESSION_HEADER: &str = "mcp-session-id";
    /// The header carrying the request's protocol version (the negotiated one in the handshake era, the one in
    /// `_meta` in the stateless era).
    pub const VERSION_HEADER: &str = "mcp-protocol-version";
    /// Stateless era: the header mirroring the request's JSON-RPC method.
    pub const METHOD_HEADER: &str = "mcp-method";
    /// Stateless era: the header mirroring the tool name (`tools/call`, `prompts/get`) or URI (`resources/read`).
    pub const NAME_HEADER: &str = "mcp-name";

    /// The `_meta` keys of a stateless request and result.
    pub mod meta {
        pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
        pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
        pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
        pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
        pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    }

    /// The stateless era's own JSON-RPC error codes (each answered with HTTP 400).
    pub mod codes {
        /// A routing header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) disagrees with the body.
        pub const HEADER_MISMATCH: i64 = -32020;
        /// The request needs a client capability its `_meta` does not declare.
        pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
        /// The request's protocol version is not served here; `data` lists the supported ones.
        pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    }
}

/// A2A over JSON-RPC (`POST /a2a`).
pub mod a2a {
    /// The path of the JSON-RPC endpoint under a runtime's base URL.
    pub const ENDPOINT_PATH: &str = "/a2a";
    /// The header naming the protocol version of a request (absent means 0.3).
    pub const VERSION_HEADER: &str = "a2a-version";
    /// The version the operator speaks, with the 1.0 method names.
    pub const VERSION: &str = "1.0";
    /// Versions the runtime speaks, newest first.
    pub const SUPPORTED_VERSIONS: &[&str] = &["1.0", "0.3"];

    /// A2A's own JSON-RPC error codes.
    pub const TASK_NOT_FOUND: i64 = -32001;
    pub const TASK_NOT_CANCELABLE: i64 = -32002;
    pub const PUSH_NOT_SUPPORTED: i64 = -32003;
    pub const UNSUPPORTED_OPERATION: i64 = -32004;
    pub const CONTENT_TYPE_NOT_SUPPORTED: i64 = -32005;
    pub const VERSION_NOT_SUPPORTED: i64 = -32009;
}

/// JSON-RPC 2.0's error codes, shared by MCP and A2A.
pub mod jsonrpc {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// The MCP tools a runtime offers, in listing order; a ToolServer may offer any subset.
pub const TOOL_NAMES: &[&str] = &[
    "hybrid_search",
    "search",
    "get_document",
    "list_documents",
    "upsert_document",
    "delete_document",
    "usage",
    "audit",
];

/// An MCP tool the runtime can expose.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// Keyword (BM25) and vector search fused into one ranking.
    HybridSearch,
    /// Lexical search only.
    Search,
    /// Fetch one document by id.
    GetDocument,
    /// Page through documents.
    ListDocuments,
    /// Create or replace a document (and embed it).
    UpsertDocument,
    /// Delete a document.
    DeleteDocument,
    /// Report the caller's usage and remaining budget.
    Usage,
    /// Read the tenant's audit trail.
    Audit,
}

impl Tool {
    /// Every tool, in listing order.
    pub const ALL: [Tool; 8] = [
        Tool::HybridSearch,
        Tool::Search,
        Tool::GetDocument,
        Tool::ListDocuments,
        Tool::UpsertDocument,
        Tool::DeleteDocument,
        Tool::Usage,
        Tool::Audit,
    ];

    /// The tool's MCP name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::HybridSearch => "hybrid_search",
            Tool::Search => "search",
            Tool::GetDocument => "get_document",
            Tool::ListDocuments => "list_documents",
            Tool::UpsertDocument => "upsert_document",
            Tool::DeleteDocument => "delete_document",
            Tool::Usage => "usage",
            Tool::Audit => "audit",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_listed_under_its_serde_name() {
        let names: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, TOOL_NAMES);
        for t in Tool::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.name());
        }
    }
}
