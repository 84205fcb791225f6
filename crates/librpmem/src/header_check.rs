//! `include/librpmem.h` against the Rust side: every constant the header
//! defines has the value the library uses, and every prototype has the
//! type of the export. One table holds each function's type twice, as Rust
//! and as C; the Rust compiler checks the first against the export, a C
//! compiler checks the second against the header.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::path::Path;
use std::process::Command;

use crate::api::*;
use crate::RpmemPoolAttr;

/// `(name, C type of a pointer to it)`, after checking the Rust export has
/// the Rust type given.
macro_rules! prototypes {
    ($($name:ident: $rust:ty => $c:literal;)*) => {{
        $( let _: $rust = $name; )*
        vec![$((stringify!($name), $c)),*]
    }};
}

fn prototypes() -> Vec<(&'static str, &'static str)> {
    prototypes! {
        rpmem_create: unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void, usize, *mut c_uint, *const RpmemPoolAttr) -> *mut RpmemPool
            => "RPMEMpool *(*)(const char *, const char *, void *, size_t, unsigned *, const struct rpmem_pool_attr *)";
        rpmem_open: unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void, usize, *mut c_uint, *mut RpmemPoolAttr) -> *mut RpmemPool
            => "RPMEMpool *(*)(const char *, const char *, void *, size_t, unsigned *, struct rpmem_pool_attr *)";
        rpmem_set_attr: unsafe extern "C" fn(*mut RpmemPool, *const RpmemPoolAttr) -> c_int
            => "int (*)(RPMEMpool *, const struct rpmem_pool_attr *)";
        rpmem_close: unsafe extern "C" fn(*mut RpmemPool) -> c_int
            => "int (*)(RPMEMpool *)";
        rpmem_persist: unsafe extern "C" fn(*mut RpmemPool, usize, usize, c_uint, c_uint) -> c_int
            => "int (*)(RPMEMpool *, size_t, size_t, unsigned, unsigned)";
        rpmem_deep_persist: unsafe extern "C" fn(*mut RpmemPool, usize, usize, c_uint) -> c_int
            => "int (*)(RPMEMpool *, size_t, size_t, unsigned)";
        rpmem_flush: unsafe extern "C" fn(*mut RpmemPool, usize, usize, c_uint, c_uint) -> c_int
            => "int (*)(RPMEMpool *, size_t, size_t, unsigned, unsigned)";
        rpmem_drain: unsafe extern "C" fn(*mut RpmemPool, c_uint, c_uint) -> c_int
            => "int (*)(RPMEMpool *, unsigned, unsigned)";
        rpmem_read: unsafe extern "C" fn(*mut RpmemPool, *mut c_void, usize, usize, c_uint) -> c_int
            => "int (*)(RPMEMpool *, void *, size_t, size_t, unsigned)";
        rpmem_remove: unsafe extern "C" fn(*const c_char, *const c_char, c_int) -> c_int
            => "int (*)(const char *, const char *, int)";
        rpmem_check_version: extern "C" fn(c_uint, c_uint) -> *const c_char
            => "const char *(*)(unsigned, unsigned)";
        rpmem_errormsg: extern "C" fn() -> *const c_char
            => "const char *(*)(void)";
    }
}

/// `(C expression, value on the Rust side)`: what the library and the
/// engine use, and the wire encoding of the attributes.
fn constants() -> Vec<(&'static str, u64)> {
    use rpmem_proto::attr as layout;
    vec![
        ("RPMEM_PERSIST_RELAXED", rpmem::PERSIST_RELAXED.into()),
        ("RPMEM_FLUSH_RELAXED", rpmem::FLUSH_RELAXED.into()),
        ("RPMEM_REMOVE_FORCE", crate::REMOVE_FORCE as u64),
        ("RPMEM_REMOVE_POOL_SET", crate::REMOVE_POOL_SET as u64),
        ("RPMEM_MAJOR_VERSION", crate::MAJOR_VERSION.into()),
        ("RPMEM_MINOR_VERSION", crate::MINOR_VERSION.into()),
        ("RPMEM_MIN_POOL", rpmem::MIN_POOL as u64),
        ("RPMEM_MIN_PART", rpmem::MIN_PART as u64),
        ("RPMEM_POOL_HDR_SIG_LEN", layout::SIG_LEN as u64),
        ("RPMEM_POOL_HDR_UUID_LEN", layout::UUID_LEN as u64),
        ("RPMEM_POOL_USER_FLAGS_LEN", layout::USER_FLAGS_LEN as u64),
        (
            "sizeof(struct rpmem_pool_attr)",
            std::mem::size_of::<RpmemPoolAttr>() as u64,
        ),
        ("sizeof(struct rpmem_pool_attr)", layout::ENCODED_LEN as u64),
    ]
}

fn c_compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    Command::new(&cc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| cc)
}

#[test]
fn the_header_agrees_with_the_library() {
    let Some(cc) = c_compiler() else {
        eprintln!("skipping: needs a C compiler (cc or $CC)");
        return;
    };
    let mut src = String::from("#include <librpmem.h>\n");
    for (expr, value) in constants() {
        src += &format!("_Static_assert(({expr}) == {value}ULL, \"{expr} is not {value}\");\n");
    }
    for (name, ty) in prototypes() {
        src += &format!(
            "_Static_assert(__builtin_types_compatible_p(__typeof__(&{name}), {ty}), \
             \"{name} is not {ty}\");\n"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("header_check.c");
    std::fs::write(&file, &src).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-fsyntax-only", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{src}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_wrong_expectation_fails_the_check() {
    // The check can fail: a constant off by one does not compile.
    let Some(cc) = c_compiler() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.c");
    std::fs::write(
        &file,
        "#include <librpmem.h>\n_Static_assert(RPMEM_MIN_PART == 1, \"x\");\n\
         _Static_assert(__builtin_types_compatible_p(__typeof__(&rpmem_drain), int (*)(RPMEMpool *, unsigned)), \"y\");\n",
    )
    .unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-fsyntax-only", "-I"])
        .arg(&include)
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("\"x\"") && err.contains("\"y\""), "{err}");
}
