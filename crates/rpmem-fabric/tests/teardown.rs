//! Tearing connections down closes each of libfabric's file descriptors
//! once: a descriptor closed twice is a number some other part of the
//! process may hold by then (a progress thread's wake-up socket, a pool
//! file), and closing it under them loses data or hangs a later close.
//!
//! Alone in its own test binary: it watches the whole process's
//! descriptor table, which other tests running beside it would change.

mod common;
use common::{accept_one, client, connect_one, libfabric, server, PROVIDERS};

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};

fn open_fds() -> BTreeSet<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

#[test]
fn a_shut_down_endpoint_closes_no_descriptor_twice() {
    let Some(lib) = libfabric() else { return };
    let null = File::open("/dev/null").unwrap();
    for prov in PROVIDERS {
        let (sdom, listener, addr) = server(&lib, prov);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let srv = std::thread::spawn(move || {
            let _accepted = accept_one(&sdom, &listener, 64, 1);
            // Stay connected, doing nothing, until the client has checked.
            released.recv().unwrap();
        });
        let cdom = client(&lib, prov, addr);
        let (mut ep, mr) = connect_one(&cdom, b"x", 64, 1);

        let before = open_fds();
        ep.shutdown();
        // Whatever the shutdown closed, the process reuses at once: stand
        // in for that with /dev/null at each freed number.
        // (The listing's own descriptor is among them, harmlessly.)
        let freed: Vec<RawFd> = before.into_iter().filter(|&fd| !is_open(fd)).collect();
        for &fd in &freed {
            // SAFETY: `fd` is free (checked just above) and nothing else in
            // this test binary opens descriptors meanwhile.
            assert_eq!(unsafe { libc::dup2(null.as_raw_fd(), fd) }, fd);
        }
        eprintln!("{prov}: freed {freed:?}");
        drop(ep);
        drop(mr);
        drop(cdom);
        release.send(()).unwrap();
        srv.join().unwrap();
        for &fd in &freed {
            assert!(
                is_open(fd),
                "{prov}: descriptor {fd}, freed by the shutdown and reused, was closed again"
            );
            // SAFETY: the stand-in planted above, closed once here.
            unsafe { libc::close(fd) };
        }
    }
}
