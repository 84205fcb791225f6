//! The pool header decoder (rpmemd decodes the header of every part it
//! opens, whoever wrote the file). Nothing may panic; a header that decodes
//! encodes to bytes that decode to the same header, and flipping any byte
//! its checksum covers is detected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpmem_storage::header::{checksum, PoolHeader, FEAT_CKSUM_2K, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let mut raw = [0u8; HEADER_LEN];
    let n = data.len().min(HEADER_LEN);
    raw[..n].copy_from_slice(&data[..n]);
    // Inputs of odd length carry a valid checksum, so that the fuzzer gets
    // past it to the fields.
    if data.len() % 2 == 1 {
        let cksum_2k = u32::from_le_bytes(raw[16..20].try_into().unwrap()) & FEAT_CKSUM_2K != 0;
        let sum = checksum(&raw, cksum_2k);
        raw[4088..].copy_from_slice(&sum.to_le_bytes());
    }
    let Ok(h) = PoolHeader::from_bytes(&raw) else {
        return;
    };
    let again = h.to_bytes();
    assert_eq!(PoolHeader::from_bytes(&again).as_ref(), Ok(&h));
    let covered = if h.incompat & FEAT_CKSUM_2K != 0 { 2048 } else { 4088 };
    let i = data.len() % covered;
    let mut flipped = again;
    flipped[i] ^= 0x01;
    assert!(PoolHeader::from_bytes(&flipped).is_err(), "flip at {i}");
});
