//! Data-channel decoders: hello, request header and ack, fixed sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_proto::data::{Ack, Hello, RequestHeader, ACK_LEN, HEADER_LEN, HELLO_LEN};

fuzz_target!(|data: &[u8]| {
    if let Some(raw) = data.get(..HELLO_LEN) {
        if let Ok(h) = Hello::decode(raw.try_into().unwrap()) {
            assert_eq!(&h.encode()[..], raw);
        }
    }
    if let Some(raw) = data.get(..HEADER_LEN) {
        if let Ok(h) = RequestHeader::decode(raw.try_into().unwrap()) {
            assert_eq!(&h.encode()[..], raw);
        }
    }
    if let Some(raw) = data.get(..ACK_LEN) {
        if let Ok(a) = Ack::decode(raw.try_into().unwrap()) {
            assert_eq!(&a.encode()[..], raw);
        }
    }
});
