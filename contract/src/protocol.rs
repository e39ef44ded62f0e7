//! Protocol facts that the runtime serves and the operator relies on: MCP's versions and headers, the A2A
//! endpoint's version, headers and error codes, JSON-RPC's error codes and the MCP tools.

use serde::{Deserialize, Serialize};

/// MCP over Streamable HTTP.
pub mod mcp {
    /// Supported protocol versions, newest first.
    pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
    /// The header carrying a session's id after `initialize`.
    pub const SESSION_HEADER: &str = "mcp-session-id";
    /// The header carrying the negotiated protocol version after `initialize`.
    pub const VERSION_HEADER: &str = "mcp-protocol-version";
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
}

impl Tool {
    /// Every tool, in listing order.
    pub const ALL: [Tool; 7] = [
        Tool::HybridSearch,
        Tool::Search,
        Tool::GetDocument,
        Tool::ListDocuments,
        Tool::UpsertDocument,
        Tool::DeleteDocument,
        Tool::Usage,
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
