//! Bytes PMDK 1.12.1's own librpmem and rpmemd exchanged on the ssh channel
//! (see `fixtures/pmdk/README.md`): the codec decodes them to what the C
//! program asked for and encodes them back byte for byte.

use rpmem_proto::pmdk::obc::{self, Common, IbcAttr, Request, Response};
use rpmem_proto::pmdk::{PersistMethod, Provider, Status};
use rpmem_proto::PoolAttr;

const CREATE_IN: &[u8] = include_bytes!("fixtures/pmdk/create.in");
const CREATE_OUT: &[u8] = include_bytes!("fixtures/pmdk/create.out");
const OPEN_IN: &[u8] = include_bytes!("fixtures/pmdk/open.in");
const OPEN_OUT: &[u8] = include_bytes!("fixtures/pmdk/open.out");

fn attr(seed: u8) -> PoolAttr {
    PoolAttr {
        signature: *b"CAPTURE\0",
        major: 7,
        compat_features: 0x0102_0304,
        incompat_features: 0x0506_0708,
        ro_compat_features: 0x090a_0b0c,
        poolset_uuid: [seed + 1; 16],
        uuid: [seed + 2; 16],
        next_uuid: [seed + 3; 16],
        prev_uuid: [seed + 4; 16],
        user_flags: [seed + 5; 16],
    }
}

const COMMON: Common = Common {
    major: 0,
    minor: 1,
    pool_size: 8 << 20,
    nlanes: 4,
    provider: Provider::Sockets as u32,
    buff_size: 8192,
};

fn encode_requests(reqs: &[Request]) -> Vec<u8> {
    reqs.iter().flat_map(Request::encode).collect()
}

fn encode_responses(resps: &[Response]) -> Vec<u8> {
    let mut out = obc::encode_startup_status(0).to_vec();
    out.extend(resps.iter().flat_map(Response::encode));
    out
}

#[test]
fn create_session_requests() {
    let reqs = obc::decode_requests(CREATE_IN).unwrap();
    assert_eq!(
        reqs,
        [
            Request::Create {
                common: COMMON,
                attr: attr(0x10),
                pool_desc: "cap.set".into()
            },
            Request::SetAttr { attr: attr(0x20) },
            Request::Close { flags: 0 },
        ]
    );
    assert_eq!(encode_requests(&reqs), CREATE_IN);
}

#[test]
fn open_session_requests() {
    let reqs = obc::decode_requests(OPEN_IN).unwrap();
    assert_eq!(
        reqs,
        [
            Request::Open {
                common: COMMON,
                pool_desc: "cap.set".into()
            },
            Request::Close { flags: 0 },
        ]
    );
    assert_eq!(encode_requests(&reqs), OPEN_IN);
}

fn check_ibc(ibc: &IbcAttr) {
    assert!(ibc.port > 0 && ibc.port <= 0xffff, "{ibc:?}");
    assert_eq!(ibc.persist_method(), Some(PersistMethod::Gpspm));
    assert_eq!(ibc.nlanes, 4);
    assert_ne!(ibc.raddr, 0);
}

#[test]
fn create_session_responses() {
    let (status, resps, last) = obc::decode_responses(CREATE_OUT).unwrap();
    assert_eq!((status, last), (0, None));
    let [Response::Create { status, ibc }, Response::SetAttr { status: s2 }, Response::Close { status: s3 }] =
        &resps[..]
    else {
        panic!("{resps:?}");
    };
    assert_eq!([*status, *s2, *s3], [Status::Success; 3]);
    check_ibc(ibc);
    assert_eq!(encode_responses(&resps), CREATE_OUT);
}

#[test]
fn open_session_responses() {
    let (status, resps, last) = obc::decode_responses(OPEN_OUT).unwrap();
    assert_eq!((status, last), (0, None));
    let [Response::Open {
        status,
        ibc,
        attr: a,
    }, Response::Close { status: s2 }] = &resps[..]
    else {
        panic!("{resps:?}");
    };
    assert_eq!([*status, *s2], [Status::Success; 2]);
    assert_eq!(*a, attr(0x20), "open returns what set_attr stored");
    check_ibc(ibc);
    assert_eq!(encode_responses(&resps), OPEN_OUT);
}

#[test]
fn every_cut_of_a_stream_is_refused_not_misread() {
    for stream in [CREATE_IN, OPEN_IN] {
        let ends: Vec<usize> = obc::decode_requests(stream)
            .unwrap()
            .iter()
            .scan(0, |at, r| {
                *at += r.encode().len();
                Some(*at)
            })
            .collect();
        for cut in 1..stream.len() {
            let got = obc::decode_requests(&stream[..cut]);
            assert_eq!(got.is_ok(), ends.contains(&cut), "cut at {cut}: {got:?}");
        }
    }
}
