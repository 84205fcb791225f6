//! Checks every declaration of `ffi` against the installed libfabric headers:
//! a C program prints `offsetof`/`sizeof` of each field we declare and the
//! value of each constant, and the numbers must equal Rust's.

use super::*;
use std::mem::{offset_of, size_of};
use std::process::Command;

/// Each entry: the C expression, and the value Rust has for it.
fn expectations() -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = Vec::new();
    macro_rules! fields {
        ($s:ident: $($f:ident $(= $c:literal)?),+) => {
            v.push((format!("sizeof(struct {})", stringify!($s)), size_of::<$s>() as u64));
            $(
                #[allow(unused_mut, unused_assignments)]
                let mut cname = stringify!($f);
                $(cname = $c;)?
                v.push((
                    format!("offsetof(struct {}, {})", stringify!($s), cname),
                    offset_of!($s, $f) as u64,
                ));
            )+
        };
    }
    macro_rules! consts {
        ($($c:ident),+) => { $( v.push((stringify!($c).to_string(), $c as u64)); )+ };
    }
    fields!(fid: fclass, context, ops);
    fields!(fi_tx_attr: caps, mode, op_flags, msg_order, comp_order, inject_size, size,
        iov_limit, rma_iov_limit, tclass);
    fields!(fi_rx_attr: caps, mode, op_flags, msg_order, comp_order, total_buffered_recv,
        size, iov_limit);
    fields!(fi_ep_attr: type_ = "type", protocol, protocol_version, max_msg_size,
        msg_prefix_size, max_order_raw_size, max_order_war_size, max_order_waw_size,
        mem_tag_format, tx_ctx_cnt, rx_ctx_cnt, auth_key_size, auth_key);
    fields!(fi_fabric_attr: fabric, name, prov_name, prov_version, api_version);
    fields!(fi_eq_attr: size, flags, wait_obj, signaling_vector, wait_set);
    fields!(fi_eq_err_entry: fid, context, data, err, prov_errno, err_data, err_data_size);
    fields!(fi_eq_cm_entry: fid, info);
    fields!(fi_cq_attr: size, flags, format, wait_obj, signaling_vector, wait_cond, wait_set);
    fields!(fi_cq_msg_entry: op_context, flags, len);
    fields!(fi_cq_err_entry: op_context, flags, len, buf, data, tag, olen, err, prov_errno,
        err_data, err_data_size);
    fields!(fi_context2: internal);
    fields!(fid_mr: fid, mem_desc, key);
    fields!(fid_fabric: fid, ops, api_version);
    fields!(fid_domain: fid, ops, mr);
    fields!(fid_eq: fid, ops);
    fields!(fid_cq: fid, ops);
    // Structures declared only up to the last field we use: offsets only.
    macro_rules! prefix {
        ($s:ident: $($f:ident),+) => {
            $( v.push((format!("offsetof(struct {}, {})", stringify!($s), stringify!($f)),
                offset_of!($s, $f) as u64)); )+
        };
    }
    prefix!(fi_ops: size, close, bind, control);
    prefix!(fi_info: next, caps, mode, addr_format, src_addrlen, dest_addrlen, src_addr,
        dest_addr, handle, tx_attr, rx_attr, ep_attr, domain_attr, fabric_attr);
    prefix!(fi_domain_attr: domain, name, threading, control_progress, data_progress,
        resource_mgmt, av_type, mr_mode, mr_key_size);
    prefix!(fi_ops_fabric: size, domain, passive_ep, eq_open, wait_open, trywait);
    prefix!(fi_ops_domain: size, av_open, cq_open, endpoint);
    prefix!(fi_ops_mr: size, reg);
    prefix!(fi_ops_eq: size, read, readerr, write, sread);
    prefix!(fi_ops_cq: size, read, readfrom, readerr, sread);
    prefix!(fi_ops_cm: size, setname, getname, getpeer, connect, listen, accept, reject,
        shutdown);
    prefix!(fi_ops_msg: size, recv, recvv, recvmsg, send, sendv, sendmsg, inject);
    prefix!(fi_ops_rma: size, read, readv, readmsg, write);
    prefix!(fid_ep: fid, ops, cm, msg, rma);
    prefix!(fid_pep: fid, ops, cm);
    consts!(
        FI_MSG,
        FI_RMA,
        FI_READ,
        FI_WRITE,
        FI_RECV,
        FI_SEND,
        FI_TRANSMIT,
        FI_REMOTE_READ,
        FI_REMOTE_WRITE,
        FI_SOURCE,
        FI_CONTEXT,
        FI_CONTEXT2,
        FI_RX_CQ_DATA,
        FI_MR_LOCAL,
        FI_MR_RAW,
        FI_MR_VIRT_ADDR,
        FI_MR_ALLOCATED,
        FI_MR_PROV_KEY,
        FI_MR_ENDPOINT,
        FI_EP_MSG,
        FI_THREAD_SAFE,
        FI_WAIT_NONE,
        FI_WAIT_UNSPEC,
        FI_WAIT_FD,
        FI_CQ_FORMAT_MSG,
        FI_SOCKADDR_IN,
        FI_SOCKADDR_IN6,
        FI_CONNREQ,
        FI_CONNECTED,
        FI_SHUTDOWN,
        FI_GETWAIT,
        FI_ENABLE,
        FI_EAVAIL
    );
    v.push(("FI_VERSION(1, 10)".into(), FI_VERSION_REQUESTED as u64));
    v
}

#[test]
fn declarations_match_the_installed_headers() {
    let header = std::path::Path::new("/usr/include/rdma/fabric.h");
    if !header.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install libfabric-dev for this test"
        );
        eprintln!("skipping: needs the libfabric headers (apt-get install libfabric-dev)");
        return;
    }
    let exp = expectations();
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <rdma/fabric.h>\n\
         #include <rdma/fi_domain.h>\n#include <rdma/fi_endpoint.h>\n#include <rdma/fi_cm.h>\n\
         #include <rdma/fi_eq.h>\n#include <rdma/fi_rma.h>\n#include <rdma/fi_errno.h>\n\
         int main(void) {\n",
    );
    for (expr, _) in &exp {
        c.push_str(&format!(
            "    printf(\"%llu\\n\", (unsigned long long)({expr}));\n"
        ));
    }
    c.push_str("    return 0;\n}\n");
    let dir = std::env::temp_dir().join(format!("rpmem-fabric-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, c).unwrap();
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("running the C compiler");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let got: Vec<u64> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(got.len(), exp.len());
    let wrong: Vec<String> = exp
        .iter()
        .zip(&got)
        .filter(|((_, rust), c)| rust != *c)
        .map(|((expr, rust), c)| format!("{expr}: C says {c}, Rust says {rust}"))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(wrong.is_empty(), "layout mismatches:\n{}", wrong.join("\n"));
}
