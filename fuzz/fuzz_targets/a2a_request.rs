//! An A2A request as the endpoint reads it: the method name picks the operation and dialect, and a message (with
//! its parts) is read from the wire form of either dialect and rendered back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_runtime::{
    a2a::wire::{self, Dialect, Method},
    jsonrpc::{self, Message},
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = jsonrpc::parse_body(data) else {
        return;
    };
    let Ok(Message::Request { method, params, .. }) = jsonrpc::classify(body) else {
        return;
    };
    let _ = Method::parse(&method);
    let Some(message) = params.as_ref().and_then(|p| p.get("message")) else {
        return;
    };
    if let Ok(m) = wire::message_from_wire(message) {
        let _ = wire::message_text(&m);
        for d in [Dialect::V1, Dialect::V03] {
            let _ = wire::render_message(&m, d);
        }
    }
    if let Some(Value::Array(parts)) = message.get("parts") {
        for p in parts {
            let _ = wire::part_from_wire(p);
        }
    }
});
