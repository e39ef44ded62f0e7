//! An MCP POST as the endpoint reads it before any tool runs: the protocol version header (the first line of the
//! input), the body's framing, and the parameters of `initialize`, `tools/list` and `tools/call`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_runtime::{
    jsonrpc::{self, Message},
    mcp, tools,
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let _ = mcp::negotiate(std::str::from_utf8(header).ok());
    let Ok(parsed) = jsonrpc::parse_body(body) else {
        return;
    };
    let messages = match parsed {
        Value::Array(items) => items,
        single => vec![single],
    };
    for m in messages {
        let Ok(Message::Request { id, method, params }) = jsonrpc::classify(m) else {
            continue;
        };
        match method.as_str() {
            "tools/call" => {
                if let Ok((name, args)) = mcp::tool_call_params(&id, params) {
                    let _ = tools::find(&name);
                    let _ = args.to_string();
                }
            }
            "tools/list" => {
                if let Some(cursor) = params.as_ref().and_then(|p| p.get("cursor")).and_then(Value::as_str) {
                    let _ = tools::decode_cursor(cursor);
                }
            }
            "initialize" => {
                let version = params
                    .as_ref()
                    .and_then(|p| p.get("protocolVersion"))
                    .and_then(Value::as_str);
                let _ = mcp::negotiate(version);
            }
            _ => {}
        }
    }
});
