//! What the binding's tests share: the providers, loading libfabric, a
//! listening server and a client domain on 127.0.0.1, and endpoints
//! connected with one receive posted.

#![allow(dead_code)]

use rpmem_fabric::{
    Access, Domain, Endpoint, Fabric, Hints, Libfabric, Listener, MemoryRegion, OpKind,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const PROVIDERS: [&str; 2] = ["tcp", "sockets"];
pub const T: Duration = Duration::from_secs(10);

/// libfabric, or None (with a message) where it is not installed; in CI it
/// must be.
pub fn libfabric() -> Option<Libfabric> {
    match Libfabric::load() {
        Ok(l) => Some(l),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install libfabric1: {e}"
            );
            eprintln!("skipping: needs libfabric (apt-get install libfabric1): {e}");
            None
        }
    }
}

pub fn server(lib: &Libfabric, prov: &str) -> (Arc<Domain>, Listener, SocketAddr) {
    let info = lib
        .getinfo(&Hints::listen("127.0.0.1", 0).provider(prov))
        .unwrap()
        .remove(0);
    assert_eq!(info.provider(), prov);
    let fabric = Fabric::open(&info).unwrap();
    let domain = fabric.domain().unwrap();
    let listener = fabric.listen().unwrap();
    let addr = listener.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    (domain, listener, addr)
}

pub fn client(lib: &Libfabric, prov: &str, addr: SocketAddr) -> Arc<Domain> {
    let info = lib
        .getinfo(&Hints::connect("127.0.0.1", addr.port()).provider(prov))
        .unwrap()
        .remove(0);
    assert_eq!(info.dest_addr(), Some(addr));
    Fabric::open(&info).unwrap().domain().unwrap()
}

pub fn completion(ep: &mut Endpoint, kind: OpKind, token: u64) -> usize {
    let c = ep.wait(T).unwrap();
    assert_eq!((c.kind, c.token), (kind, token), "{c:?}");
    c.len
}

/// Accepts the next request with a 64-byte receive (`token`) posted in a
/// registration of `len` bytes.
pub fn accept_one(
    sdom: &Arc<Domain>,
    listener: &Listener,
    len: usize,
    token: u64,
) -> (Endpoint, Arc<MemoryRegion>) {
    let req = listener.next_request(T).unwrap();
    let mut ep = sdom.accept_endpoint(req).unwrap();
    let mr = sdom.register(len, Access::LOCAL).unwrap();
    ep.post_recv(&mr, 0, 64, token).unwrap();
    ep.accept(T).unwrap();
    (ep, mr)
}

/// Connects with `data` as private data, a 64-byte receive (`token`)
/// posted in a registration of `len` bytes.
pub fn connect_one(
    cdom: &Arc<Domain>,
    data: &[u8],
    len: usize,
    token: u64,
) -> (Endpoint, Arc<MemoryRegion>) {
    let mr = cdom.register(len, Access::LOCAL).unwrap();
    let mut ep = cdom.endpoint().unwrap();
    ep.post_recv(&mr, 0, 64, token).unwrap();
    ep.connect(data, T).unwrap();
    (ep, mr)
}
