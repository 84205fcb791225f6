//! The C ABI of rpmem: a drop-in `librpmem.so.1` implementing librpmem API 1.3
//! (see `include/librpmem.h` and the librpmem(7), rpmem_create(3) and
//! rpmem_persist(3) man pages) on top of the [`rpmem`] client engine.
//!
//! Layout:
//! - [`api`]: the twelve exported `rpmem_*` functions, each declared with
//!   `export!` (`macros.rs`): a versioned symbol (`LIBRPMEM_1.0`, the node
//!   of `librpmem.map`) whose body runs behind the panic boundary and
//!   reports failures through errno and the thread-local message of [`error`].
//! - `ffi`: the only place that turns raw C pointers into Rust values.
//! - [`attr`]: `struct rpmem_pool_attr` and its conversion to [`rpmem::PoolAttr`].
//! - [`error`]: the crate's error type, its errno mapping and `rpmem_errormsg`'s buffer.
//!
//! The engine does the semantic checks (alignment, ranges, lanes, flags, the
//! header guard); this crate checks what only C can get wrong: NULL
//! pointers, strings that are not UTF-8, `*nlanes == 0`, buffer lengths and
//! `rpmem_remove` flags.

#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod api;
pub mod attr;
pub mod error;
mod ffi;
#[cfg(test)]
mod header_check;

pub use api::*;
pub use attr::RpmemPoolAttr;

/// `RPMEM_MAJOR_VERSION` of the header this library implements.
pub const MAJOR_VERSION: u32 = 1;
/// `RPMEM_MINOR_VERSION` of the header this library implements.
pub const MINOR_VERSION: u32 = 3;
/// `RPMEM_REMOVE_FORCE`.
pub const REMOVE_FORCE: i32 = 0x1;
/// `RPMEM_REMOVE_POOL_SET`.
pub const REMOVE_POOL_SET: i32 = 0x2;
