//! The flex driver's output: any stdout is either a valid reply or a
//! `BadReply`; never a panic.
#![no_main]

use flex_provisioner::protocol::parse_reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_reply(data);
});
