//! Decoders of PMDK's protocol: ssh-channel requests and responses, fabric
//! persist messages and their answers. Nothing may panic, and whatever
//! decodes must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_proto::pmdk::{fip, obc};

fuzz_target!(|data: &[u8]| {
    if let Ok(hdr) = data.get(..obc::MSG_HDR_LEN).unwrap_or_default().try_into() {
        if let Ok((_, n)) = obc::request_len(hdr) {
            assert!((obc::CLOSE_LEN..=obc::MAX_REQUEST).contains(&n));
        }
    }
    if let Ok(r) = obc::Request::decode(data) {
        assert_eq!(r.encode(), data);
    }
    if let Ok(r) = obc::Response::decode(data) {
        assert_eq!(r.encode(), data);
    }
    // The first byte picks the session's inline buffer size.
    if let Some((b, rest)) = data.split_first() {
        if let Ok(p) = fip::Persist::decode(rest, u64::from(*b) * 64) {
            assert_eq!(p.encode(), rest);
            let _ = p.offset_in(u64::from(*b) << 40, u64::MAX);
        }
    }
    if let Ok(r) = fip::PersistResp::decode(data) {
        assert_eq!(r.encode(), data);
    }
});
