//! The export declaration, panic boundary and argument-check macros used by
//! every export.

/// The symbol version of every export: the node `librpmem.map` defines.
// Unit tests build no versioned symbols (see `symbol_version!`).
#[cfg_attr(test, allow(unused_macros))]
macro_rules! version_node {
    () => {
        "LIBRPMEM_1.0"
    };
}

/// Declares one export of the C ABI, as rustls-ffi does: the `#[no_mangle]
/// extern "C"` function, its body behind the panic boundary
/// (`ffi_boundary!` with the function's name; on an error or a panic it
/// returns the `fail` value), and its symbol version.
///
/// ```ignore
/// export! {
///     /// Docs.
///     unsafe fn rpmem_close(rpp: *mut RpmemPool) -> c_int;
///     fail -1;
///     { /* -> Result<c_int, CapiError> */ }
/// }
/// ```
macro_rules! export {
    (
        $(#[$meta:meta])*
        unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;
        fail $fail:expr;
        $body:block
    ) => {
        $(#[$meta])*
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            ffi_boundary!(stringify!($name), $fail, $body)
        }
        symbol_version!($name);
    };
    (
        $(#[$meta:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;
        fail $fail:expr;
        $body:block
    ) => {
        $(#[$meta])*
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> $ret {
            ffi_boundary!(stringify!($name), $fail, $body)
        }
        symbol_version!($name);
    };
}

/// Binds export `$name` to [`version_node!`]: rustc hands the linker its
/// own, unversioned export list, so without `.symver` the dynamic symbol
/// would not read `rpmem_create@@LIBRPMEM_1.0` as in PMDK. The directive
/// must sit in the module that defines the symbol (the assembler accepts
/// `.symver` only for symbols of the same object, and rustc keeps a
/// module's items in one codegen unit), which is where `export!` expands.
/// Not in unit tests: the test executable has no version script.
macro_rules! symbol_version {
    ($name:ident) => {
        #[cfg(not(test))]
        std::arch::global_asm!(concat!(
            ".symver ",
            stringify!($name),
            ", ",
            stringify!($name),
            "@@",
            version_node!()
        ));
    };
}

/// Runs `$body` — a block evaluating to `Result<T, CapiError>` — behind the
/// panic boundary of [`crate::error::boundary`]: on `Ok(v)` the export returns
/// `v`; on an error or a panic it sets errno and the thread-local message
/// (prefixed with `$name`) and returns `$fail`.
///
/// `return Err(..)` and `?` inside `$body` leave the body, not the export.
macro_rules! ffi_boundary {
    ($name:expr, $fail:expr, $body:block) => {
        $crate::error::boundary(
            $name,
            $fail,
            move || -> ::core::result::Result<_, $crate::error::CapiError> { $body },
        )
    };
}

/// Fails the enclosing `ffi_boundary!` body with EINVAL ("`<arg>` is NULL")
/// when the raw pointer argument is NULL.
macro_rules! non_null {
    ($($arg:ident),+ $(,)?) => {
        $(
            if $arg.is_null() {
                return Err($crate::error::CapiError::Null(stringify!($arg)));
            }
        )+
    };
}
