//! Inspects the cdylib cargo just built (no install needed): soname, the
//! exported symbols and their version, and a C program built against the
//! header and linked to it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The exports: the global symbols of the version script.
fn exports() -> Vec<&'static str> {
    let names: Vec<&str> = include_str!("../librpmem.map")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("rpmem_"))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert_eq!(names.len(), 12, "{names:?}");
    names
}

/// `<target>/<profile>/deps/librpmem_capi.so`: cargo builds the crate's
/// cdylib there before running this test, which lives in the same directory.
/// (The copy one level up is only refreshed when the library is rebuilt.)
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    let so = deps.join("librpmem_capi.so");
    assert!(so.exists(), "{} not built", so.display());
    so
}

/// `COMPILER FLAGS SRC -I<include> -L<dir> -Wl,-rpath,<dir> -lrpmem -o OUT`:
/// a program built against the header in `include` and the library in `dir`.
fn build(compiler: &str, flags: &[&str], src: &Path, include: &Path, dir: &Path, out: &Path) {
    run(Command::new(compiler)
        .args(flags)
        .arg(src)
        .arg(format!("-I{}", include.display()))
        .arg(format!("-L{}", dir.display()))
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .arg("-lrpmem")
        .arg("-o")
        .arg(out));
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Defined dynamic symbols, as `name@@VERSION` strings, from `readelf --dyn-syms -W`.
fn defined_dynamic_symbols(lib: &Path) -> BTreeSet<String> {
    let out = run(Command::new("readelf").args(["--dyn-syms", "-W"]).arg(lib));
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Num: Value Size Type Bind Vis Ndx Name
            (f.len() >= 8 && f[0].ends_with(':') && f[6] != "UND" && f[6] != "Ndx")
                .then(|| f[7].to_string())
        })
        .filter(|n| !n.is_empty())
        .collect()
}

#[test]
fn exports_exactly_the_api_with_version_librpmem_1_0() {
    let lib = built_library();
    let got = defined_dynamic_symbols(&lib);
    let want: BTreeSet<String> = exports()
        .iter()
        .map(|n| format!("{n}@@LIBRPMEM_1.0"))
        .collect();
    assert_eq!(got, want, "defined dynamic symbols of {}", lib.display());

    // objdump agrees, naming the version column.
    let t = run(Command::new("objdump").arg("-T").arg(&lib));
    for name in exports() {
        assert!(
            t.lines()
                .any(|l| l.ends_with(&format!(" LIBRPMEM_1.0 {name}"))
                    || l.ends_with(&format!(" LIBRPMEM_1.0\t{name}"))),
            "objdump -T shows no LIBRPMEM_1.0 {name}:\n{t}"
        );
    }
}

#[test]
fn soname_is_librpmem_so_1() {
    let d = run(Command::new("readelf").arg("-d").arg(built_library()));
    assert!(
        d.lines()
            .any(|l| l.contains("(SONAME)") && l.contains("[librpmem.so.1]")),
        "no SONAME librpmem.so.1:\n{d}"
    );
}

#[test]
fn c_program_against_header_and_library() {
    let lib = built_library();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = manifest.join("include");
    let src = manifest.join("../../tests/c/abi.c");
    let dir = std::env::temp_dir().join(format!("librpmem-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Link as an application would: -lrpmem through librpmem.so -> the file.
    for name in ["librpmem.so", "librpmem.so.1"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link).unwrap();
    }
    let exe = dir.join("abi");
    build(
        "cc",
        &["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"],
        &src,
        &include,
        &dir,
        &exe,
    );
    // The program binds to the versioned symbols and needs the soname.
    let t = run(Command::new("objdump").arg("-T").arg(&exe));
    assert!(
        t.lines()
            .any(|l| l.contains("LIBRPMEM_1.0") && l.ends_with("rpmem_create")),
        "program does not reference rpmem_create@LIBRPMEM_1.0:\n{t}"
    );
    let d = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(
        d.contains("[librpmem.so.1]"),
        "NEEDED librpmem.so.1 missing:\n{d}"
    );
    let out = run(&mut Command::new(&exe));
    assert!(out.contains("0 failures"), "{out}");

    // The header is valid C++ too (extern "C" guards).
    if Command::new("c++").arg("--version").output().is_err() {
        eprintln!("no C++ compiler: header not checked as C++");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let cxx = dir.join("hdr.cc");
    std::fs::write(
        &cxx,
        "#include <librpmem.h>\nint main() { return rpmem_check_version(1, 3) != 0; }\n",
    )
    .unwrap();
    build(
        "c++",
        &["-Wall", "-Wextra", "-Werror"],
        &cxx,
        &include,
        &dir,
        &dir.join("hdr"),
    );
    run(&mut Command::new(dir.join("hdr")));
    let _ = std::fs::remove_dir_all(&dir);
}
