//! Cost of the data-path codec: every persist encodes a header and decodes
//! an ack on the client, and the reverse on the daemon.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rpmem_proto::control::{PoolRequest, Request, Response};
use rpmem_proto::data::{Ack, Op, RequestHeader};
use rpmem_proto::Status;

fn data_path(c: &mut Criterion) {
    let h = RequestHeader {
        op: Op::Persist,
        flags: 0,
        offset: 4096,
        length: 64,
        tag: 7,
    };
    c.bench_function("request header encode", |b| {
        b.iter(|| black_box(black_box(&h).encode()))
    });
    let raw = h.encode();
    c.bench_function("request header decode", |b| {
        b.iter(|| RequestHeader::decode(black_box(&raw)).unwrap())
    });
    let ack = Ack {
        tag: 7,
        status: Status::Ok,
    }
    .encode();
    c.bench_function("ack decode", |b| {
        b.iter(|| Ack::decode(black_box(&ack)).unwrap())
    });
}

fn control_path(c: &mut Criterion) {
    let req = Request::Open {
        pool: PoolRequest::new("pools/db.set", 1 << 30, 64),
    };
    c.bench_function("control request encode", |b| {
        b.iter(|| black_box(&req).encode())
    });
    let frame = Response::Error {
        status: Status::Busy,
        message: "pool busy".into(),
    }
    .encode();
    c.bench_function("control response decode", |b| {
        b.iter(|| Response::decode(black_box(&frame[4..])).unwrap())
    });
}

criterion_group!(benches, data_path, control_path);
criterion_main!(benches);
