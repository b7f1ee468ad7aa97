//! The flex driver's output: any stdout is either a valid reply or a
//! `BadReply`; never a panic.

use flex_provisioner::protocol::parse_reply;

/// One input; panics if an invariant is broken.
pub fn check(data: &[u8]) {
    let _ = parse_reply(data);
}

/// Replies a driver gives.
pub fn seeds() -> Vec<Vec<u8>> {
    crate::lines(&[
        r#"{"status":"Success"}"#,
        r#"{"status":"Failure","message":"no space"}"#,
        r#"{"status":"Not supported","message":"provision"}"#,
        r#"{"status":"Success","volume":{"path":"/x"},"capabilities":{"attach":false}}"#,
    ])
}

/// JSON structure and the protocol's words.
pub const TOKENS: &[&str] = &[
    "{",
    "}",
    "\"status\"",
    "\"message\"",
    ":",
    ",",
    "\"Success\"",
    "\"Failure\"",
    "\"Not supported\"",
    "null",
    "[]",
    "\\u0000",
    "1e999",
];
