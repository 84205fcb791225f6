//! Control-channel decoders: a length prefix, then a request or response
//! body. Nothing may panic or allocate more than the frame limit, and
//! whatever decodes must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_proto::control::{frame_len, Request, Response, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        if let Ok(n) = frame_len(data[..4].try_into().unwrap()) {
            assert!(n > 0 && n <= MAX_FRAME);
        }
    }
    if let Ok(r) = Request::decode(data) {
        assert_eq!(&r.encode()[4..], data);
    }
    if let Ok(r) = Response::decode(data) {
        assert_eq!(&r.encode()[4..], data);
    }
});
