//! Link settings of the cdylib: the soname `librpmem.so.1` and the version
//! script `librpmem.map`, which defines the `LIBRPMEM_1.0` node and lists
//! the exports (each declared with `export!`, which binds it to the node).

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let map = dir.join("librpmem.map");
    println!("cargo:rerun-if-changed=librpmem.map");
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librpmem.so.1");
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
            map.display()
        );
    }
}
