//! Protocol facts that the runtime serves and the operator checks a ToolServer against.

/// MCP over Streamable HTTP.
pub mod mcp {
    /// Supported protocol versions, newest first.
    pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
    /// The header carrying a session's id after `initialize`.
    pub const SESSION_HEADER: &str = "mcp-session-id";
    /// The header carrying the negotiated protocol version after `initialize`.
    pub const VERSION_HEADER: &str = "mcp-protocol-version";
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
