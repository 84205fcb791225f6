//! The panic boundary and argument-check macros used by every export.

/// Runs `$body` — a block evaluating to `Result<T, CapiError>` — behind the
/// panic boundary of [`crate::error::boundary`]: on `Ok(v)` the export returns
/// `v`; on an error or a panic it sets errno and the thread-local message
/// (prefixed with `$name`) and returns `$fail`.
///
/// `return Err(..)` and `?` inside `$body` leave the body, not the export.
macro_rules! ffi_boundary {
    ($name:literal, $fail:expr, $body:block) => {
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
