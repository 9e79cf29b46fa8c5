//! Fuzz the broker's send-header fast path against the general one: arbitrary bytes as a frame
//! body (JSON or ROCKETMQ header), then, for each send code, `SendMessageRequestHeader::view_for`
//! (what the broker runs on every send, borrowing the request's fields) and `take_for` (the typed
//! header) must agree: the same values, or the same error. Never a panic.
#![no_main]

use ferrocket_net::bytes::Bytes;
use ferrocket_net::header::{RequestCode, SendMessageRequestHeader};
use ferrocket_net::RemotingCommand;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cmd) = RemotingCommand::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    for code in [
        RequestCode::SEND_MESSAGE,
        RequestCode::SEND_MESSAGE_V2,
        RequestCode::SEND_BATCH_MESSAGE,
        RequestCode::SEND_REPLY_MESSAGE_V2,
    ] {
        let taken = SendMessageRequestHeader::take_for(code, cmd.ext_fields.clone());
        let mut ext = cmd.ext_fields.clone();
        let viewed = SendMessageRequestHeader::view_for(code, &mut ext);
        match (viewed, taken) {
            (Ok(v), Ok(t)) => assert_eq!(v.to_header(), t),
            (Err(v), Err(t)) => assert_eq!(v.to_string(), t.to_string()),
            (v, t) => panic!("view_for {v:?} but take_for {t:?} (code {code})"),
        }
    }
});
