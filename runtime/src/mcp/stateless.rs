//! The stateless era of MCP (2026-07-28): no `initialize`, no session; every request carries its protocol
//! version and the client's capabilities in `params._meta`.
//!
//! A POST holds exactly one message. A request flows through the envelope checks, in the order the
//! specification's reference server applies them, first failure wins:
//! 1. `params._meta` holds the protocol version and the client capabilities, else -32602;
//! 2. the routing headers agree with the body (`MCP-Protocol-Version` with `_meta`, `Mcp-Method` with the
//!    method, `Mcp-Name` with the tool name or resource URI), each present once, else `HeaderMismatch` (-32020);
//! 3. the version is one served here, else `UnsupportedProtocolVersionError` (-32022) listing them;
//!
//! then admission, which is the tenant's rate-limit token alone (no session row is read or written), then
//! [`methods::process`]. Every result carries `resultType`, the server's identity in `_meta`, and, for results
//! a client may cache, `ttlMs` and `cacheScope`. Errors are answered with the request's id and the HTTP status
//! their code calls for: 400 for a malformed request, 404 for a method that does not exist here.

use axum::{
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Map, Value, json};

use super::{
    METHOD_HEADER, NAME_HEADER, STATELESS_VERSIONS, VERSION_HEADER, codes, header_str, meta,
    methods::{self, Caller, Refusal},
    rpc_response,
};
use crate::{
    admission,
    jsonrpc::{self, Id, Message, RpcError},
};

pub(super) async fn post(caller: &Caller<'_>, headers: &HeaderMap, body: Value) -> Response {
    if body.is_array() {
        return error_response(RpcError::new(
            None,
            jsonrpc::INVALID_REQUEST,
            "invalid request: a POST carries one JSON-RPC message; batches are not part of protocol version 2026-07-28",
        ));
    }
    let (id, method, params) = match jsonrpc::classify(body) {
        Err(e) => return error_response(e),
        // Notifications (e.g. notifications/cancelled) need no action: a request here finishes within its
        // own HTTP exchange. Responses answer nothing we asked.
        Ok(Message::Notification { .. } | Message::Response) => {
            return StatusCode::ACCEPTED.into_response();
        }
        Ok(Message::Request { id, method, params }) => (id, method, params),
    };
    if let Err(e) = check_envelope(headers, &id, &method, params.as_ref()) {
        caller
            .state
            .metrics
            .observe_rpc("mcp", "envelope", "", e.code.to_string(), 0.0);
        return error_response(e);
    }
    if let Err(r) = admission::admit_request(caller.state, caller.tenant, None, 1).await {
        return r;
    }
    let Some((id, method, out)) = methods::process(
        caller,
        super::Era::Stateless,
        STATELESS_VERSIONS[0],
        Message::Request { id, method, params },
    )
    .await
    else {
        return StatusCode::ACCEPTED.into_response();
    };
    match out {
        Ok(result) => rpc_response(
            StatusCode::OK,
            jsonrpc::success(&id, complete(&method, result)),
        ),
        Err(Refusal::Rpc(e)) => error_response(e),
        Err(Refusal::Scope(scope)) => caller.state.auth.insufficient_scope(scope),
    }
}

/// What `server/discover` answers: the versions of this era served here, the capabilities and who we are.
pub(super) fn discover() -> Value {
    json!({
        "supportedVersions": STATELESS_VERSIONS,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "listChanged": false },
        },
        "instructions": methods::INSTRUCTIONS,
    })
}

/// Checks a request's envelope and routing headers, in the specification's order; the error names the first
/// problem.
fn check_envelope(
    headers: &HeaderMap,
    id: &Id,
    method: &str,
    params: Option<&Value>,
) -> Result<(), RpcError> {
    let err = |code, message: String| RpcError::new(Some(id.clone()), code, message);
    for name in [VERSION_HEADER, METHOD_HEADER, NAME_HEADER] {
        if headers.get_all(name).iter().nth(1).is_some() {
            return Err(err(
                codes::HEADER_MISMATCH,
                format!("header mismatch: {name} appears more than once"),
            ));
        }
    }
    let Some(meta) = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
    else {
        return Err(err(
            jsonrpc::INVALID_PARAMS,
            format!(
                "invalid params: params._meta must be an object carrying {:?} and {:?}",
                meta::PROTOCOL_VERSION,
                meta::CLIENT_CAPABILITIES
            ),
        ));
    };
    let missing: Vec<&str> = [meta::PROTOCOL_VERSION, meta::CLIENT_CAPABILITIES]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(err(
            jsonrpc::INVALID_PARAMS,
            format!("invalid params: params._meta lacks {}", missing.join(", ")),
        ));
    }
    let version = &meta[meta::PROTOCOL_VERSION];
    // An absent header never matches, even a null version in the body.
    if header_str(headers, VERSION_HEADER).is_none_or(|h| version.as_str() != Some(h)) {
        return Err(err(
            codes::HEADER_MISMATCH,
            format!(
                "header mismatch: {VERSION_HEADER} must equal params._meta[{:?}]",
                meta::PROTOCOL_VERSION
            ),
        ));
    }
    if header_str(headers, METHOD_HEADER) != Some(method) {
        return Err(err(
            codes::HEADER_MISMATCH,
            format!("header mismatch: {METHOD_HEADER} must equal the method, {method:?}"),
        ));
    }
    if let Some(key) = named_by(method)
        && let Some(named) = params.and_then(|p| p.get(key)).and_then(Value::as_str)
        && decode_header_value(header_str(headers, NAME_HEADER)).as_deref() != Some(named)
    {
        return Err(err(
            codes::HEADER_MISMATCH,
            format!("header mismatch: {NAME_HEADER} must equal params.{key}"),
        ));
    }
    let Some(version) = version.as_str() else {
        return Err(err(
            jsonrpc::INVALID_PARAMS,
            "invalid params: the protocol version must be a string".into(),
        ));
    };
    if !STATELESS_VERSIONS.contains(&version) {
        return Err(err(
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "unsupported protocol version {version:?}; supported: {}",
                STATELESS_VERSIONS.join(", ")
            ),
        )
        .with_data(json!({ "supported": STATELESS_VERSIONS, "requested": version })));
    }
    Ok(())
}

/// The parameter a method's `Mcp-Name` header mirrors.
fn named_by(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// A header value as the client meant it: verbatim, or the UTF-8 inside an `=?base64?…?=` sentinel, which
/// clients use for values that cannot travel in a header as they are. A malformed sentinel decodes to None, so
/// it never matches.
fn decode_header_value(v: Option<&str>) -> Option<String> {
    let v = v?;
    match v
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    {
        None => Some(v.to_owned()),
        Some(payload) => STANDARD
            .decode(payload)
            .ok()
            .filter(|bytes| STANDARD.encode(bytes) == payload)
            .and_then(|bytes| String::from_utf8(bytes).ok()),
    }
}

/// How long, and for whom, a client may cache a method's result: `(ttlMs, cacheScope)`.
fn cache_hint(method: &str) -> Option<(u64, &'static str)> {
    match method {
        // The same for every caller, and changed only by a new release.
        "server/discover" | "resources/templates/list" => Some((600_000, "public")),
        // Depends on the caller's scopes; changes only with the configuration.
        "tools/list" => Some((300_000, "private")),
        // The tenant's documents: private to the caller, and they may change at any moment.
        "resources/list" | "resources/read" => Some((0, "private")),
        _ => None,
    }
}

/// A result as this era sends it: complete, with caching hints where they apply and the server's identity.
fn complete(method: &str, result: Value) -> Value {
    let mut out = match result {
        Value::Object(m) => m,
        other => Map::from_iter([("value".to_owned(), other)]),
    };
    out.insert("resultType".into(), json!("complete"));
    if let Some((ttl, scope)) = cache_hint(method) {
        out.insert("ttlMs".into(), json!(ttl));
        out.insert("cacheScope".into(), json!(scope));
    }
    if let Some(m) = out
        .entry("_meta")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        m.insert(meta::SERVER_INFO.into(), methods::server_info());
    }
    Value::Object(out)
}

/// An error with the HTTP status its code calls for in this era.
fn error_response(e: RpcError) -> Response {
    let status = match e.code {
        jsonrpc::PARSE_ERROR
        | jsonrpc::INVALID_REQUEST
        | jsonrpc::INVALID_PARAMS
        | codes::HEADER_MISMATCH
        | codes::MISSING_REQUIRED_CLIENT_CAPABILITY
        | codes::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    rpc_response(status, e.to_json())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn meta_params(extra: Value) -> Value {
        let mut p = json!({ "_meta": {
            meta::PROTOCOL_VERSION: "2026-07-28",
            meta::CLIENT_CAPABILITIES: {},
        }});
        if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
            p.extend(extra);
        }
        p
    }

    fn headers(method: &str, name: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(VERSION_HEADER, HeaderValue::from_static("2026-07-28"));
        h.insert(METHOD_HEADER, HeaderValue::from_str(method).unwrap());
        if let Some(n) = name {
            h.insert(NAME_HEADER, HeaderValue::from_str(n).unwrap());
        }
        h
    }

    fn code(h: &HeaderMap, method: &str, params: Option<Value>) -> Option<i64> {
        check_envelope(h, &Id::Num(1), method, params.as_ref())
            .err()
            .map(|e| e.code)
    }

    #[test]
    fn a_well_formed_envelope_passes() {
        let p = meta_params(json!({"name": "search", "arguments": {}}));
        assert_eq!(
            code(
                &headers("tools/call", Some("search")),
                "tools/call",
                Some(p)
            ),
            None
        );
        let p = meta_params(json!({"uri": "paddock://documents/a b"}));
        let sentinel = format!("=?base64?{}?=", STANDARD.encode("paddock://documents/a b"));
        assert_eq!(
            code(
                &headers("resources/read", Some(&sentinel)),
                "resources/read",
                Some(p)
            ),
            None
        );
    }

    #[test]
    fn envelope_problems_get_their_codes_in_order() {
        let h = headers("tools/list", None);
        assert_eq!(code(&h, "tools/list", None), Some(jsonrpc::INVALID_PARAMS));
        let no_caps = json!({"_meta": {meta::PROTOCOL_VERSION: "2026-07-28"}});
        assert_eq!(
            code(&h, "tools/list", Some(no_caps)),
            Some(jsonrpc::INVALID_PARAMS)
        );
        // The method header must name the body's method.
        assert_eq!(
            code(
                &headers("tools/call", None),
                "tools/list",
                Some(meta_params(json!({})))
            ),
            Some(codes::HEADER_MISMATCH)
        );
        // Mcp-Name must name the tool called.
        let call = meta_params(json!({"name": "delete_document"}));
        assert_eq!(
            code(
                &headers("tools/call", Some("search")),
                "tools/call",
                Some(call.clone())
            ),
            Some(codes::HEADER_MISMATCH)
        );
        assert_eq!(
            code(&headers("tools/call", None), "tools/call", Some(call)),
            Some(codes::HEADER_MISMATCH)
        );
        // A missing version header is a mismatch, not an unsupported version.
        let mut no_version = headers("tools/list", None);
        no_version.remove(VERSION_HEADER);
        assert_eq!(
            code(&no_version, "tools/list", Some(meta_params(json!({})))),
            Some(codes::HEADER_MISMATCH)
        );
        // Header and body agree on a version not served here.
        let mut future = headers("tools/list", None);
        future.insert(VERSION_HEADER, HeaderValue::from_static("2099-01-01"));
        let p =
            json!({"_meta": {meta::PROTOCOL_VERSION: "2099-01-01", meta::CLIENT_CAPABILITIES: {}}});
        let e = check_envelope(&future, &Id::Num(9), "tools/list", Some(&p)).unwrap_err();
        assert_eq!(e.code, codes::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.id, Some(Id::Num(9)));
        assert_eq!(
            e.data,
            Some(json!({"supported": ["2026-07-28"], "requested": "2099-01-01"}))
        );
    }

    #[test]
    fn a_routing_header_sent_twice_is_a_mismatch() {
        let mut h = headers("tools/list", None);
        h.append(METHOD_HEADER, HeaderValue::from_static("tools/list"));
        assert_eq!(
            code(&h, "tools/list", Some(meta_params(json!({})))),
            Some(codes::HEADER_MISMATCH)
        );
    }

    #[test]
    fn sentinel_values_decode_only_when_canonical() {
        assert_eq!(decode_header_value(Some("plain")).as_deref(), Some("plain"));
        assert_eq!(
            decode_header_value(Some("=?base64?w7w=?=")).as_deref(),
            Some("ü")
        );
        assert_eq!(decode_header_value(Some("=?base64?!!?=")), None);
        assert_eq!(decode_header_value(None), None);
    }

    #[test]
    fn results_are_complete_and_cacheable_ones_say_for_whom() {
        let r = complete("resources/list", json!({"resources": []}));
        assert_eq!(r["resultType"], "complete");
        assert_eq!(
            (r["ttlMs"].as_u64(), r["cacheScope"].as_str()),
            (Some(0), Some("private"))
        );
        assert_eq!(r["_meta"][meta::SERVER_INFO]["name"], "paddock-runtime");
        let r = complete("tools/call", json!({"content": [], "isError": false}));
        assert_eq!(r["resultType"], "complete");
        assert!(r.get("ttlMs").is_none() && r.get("cacheScope").is_none());
    }
}
