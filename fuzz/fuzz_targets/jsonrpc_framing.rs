//! JSON-RPC framing as both endpoints read a body: parse, then classify the message or each message of a batch,
//! then read its params, as every method does first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_runtime::jsonrpc::{self, Message};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = jsonrpc::parse_body(data) else {
        return;
    };
    let messages = match body {
        Value::Array(items) => items,
        single => vec![single],
    };
    for m in messages {
        match jsonrpc::classify(m) {
            Ok(Message::Request { id, params, .. }) => {
                let _ = jsonrpc::params::<Value>(&id, params);
            }
            Ok(Message::Notification { params, .. }) => {
                let _ = params.as_ref().and_then(|p| jsonrpc::unstorable_path(p, "params"));
            }
            Ok(Message::Response) => {}
            Err(e) => {
                let _ = e.to_json();
            }
        }
    }
});
