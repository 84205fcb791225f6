//! Pool set files (poolset(5)) as a remote pool uses them.
//!
//! ```text
//! PMEMPOOLSET
//! OPTION SINGLEHDR        # optional; or OPTION NOHDRS
//! 64M /mnt/pmem/part0
//! 1GiB /mnt/pmem/part1
//! AUTO /dev/dax0.0        # device DAX only
//! ```

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::{HDR_SIZE, MIN_PART, PAGE_SIZE};

/// Largest pool (sum of page-aligned part sizes) a set may describe: the
/// largest file offset (`off_t`).
const MAX_POOL: u64 = i64::MAX as u64;

/// Which parts carry a 4 KiB pool header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMode {
    /// Every part has a header (the default).
    All,
    /// Only part 0 has one (`OPTION SINGLEHDR`).
    Single,
    /// No part has one (`OPTION NOHDRS`).
    None,
}

/// One `SIZE PATH` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    /// Absolute path of the part file or device.
    pub path: PathBuf,
    /// Size in bytes: as written, or the device's size for `AUTO`.
    pub size: u64,
    /// The part is a character device (device DAX) rather than a regular file.
    pub is_device: bool,
    /// 1-based line of the pool set file that declared the part.
    pub line: usize,
}

/// A parsed remote pool set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSet {
    /// The pool set file.
    pub path: PathBuf,
    /// The parts, in order.
    pub parts: Vec<PartSpec>,
    /// Header layout.
    pub headers: HeaderMode,
}

/// Parses a size as poolset(5) writes it: digits followed by an optional
/// suffix. `K M G T P` and `KiB … PiB` are powers of 1024, `kB MB GB TB PB`
/// powers of 1000, `B` is bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match suffix {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "P" | "PiB" => 1 << 50,
        "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "PB" => 1_000_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Size of a device-DAX character device, from sysfs.
/// Why a part path can never name a part file, if it cannot.
fn part_path_problem(p: &str) -> Option<&'static str> {
    if p.contains('\0') {
        return Some("contains a NUL byte");
    }
    let last = p.rsplit('/').next().unwrap_or_default();
    if matches!(last, "" | "." | "..") {
        return Some("names a directory, not a part file");
    }
    None
}

fn device_size(meta: &fs::Metadata) -> Option<u64> {
    let dev = meta.rdev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let text = fs::read_to_string(format!("/sys/dev/char/{major}:{minor}/size")).ok()?;
    text.trim().parse().ok()
}

impl PoolSet {
    /// Reads and parses a pool set file.
    ///
    /// Only a regular file is read: opening a FIFO would wait for a writer,
    /// and a device could return anything.
    pub fn load(path: &Path) -> Result<PoolSet> {
        let io_err = |e| StorageError::io("read pool set", path, e);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io_err)?;
        if !file.metadata().map_err(io_err)?.file_type().is_file() {
            return Err(StorageError::Parse {
                file: path.to_path_buf(),
                line: 0,
                msg: "the pool set is not a regular file".into(),
            });
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io_err)?;
        let text = String::from_utf8(text).map_err(|_| StorageError::Parse {
            file: path.to_path_buf(),
            line: 0,
            msg: "the pool set file is not valid UTF-8".into(),
        })?;
        PoolSet::parse(path, &text)
    }

    /// Parses pool set text; `path` names the file in error messages and in
    /// the result.
    pub fn parse(path: &Path, text: &str) -> Result<PoolSet> {
        let err = |line: usize, msg: String| StorageError::Parse {
            file: path.to_path_buf(),
            line,
            msg,
        };
        let mut parts: Vec<PartSpec> = Vec::new();
        let mut seen: HashSet<PathBuf> = HashSet::new();
        // The pool's size may not exceed what a file offset can hold.
        let mut total: u64 = 0;
        let mut single = false;
        let mut nohdrs = false;
        let mut seen_sig = false;
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = match raw.find('#') {
                Some(p) => &raw[..p],
                None => raw,
            }
            .trim();
            if !seen_sig {
                if line != "PMEMPOOLSET" {
                    return Err(err(lineno, "the first line must be PMEMPOOLSET".into()));
                }
                seen_sig = true;
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            if first == "OPTION" {
                let opts: Vec<&str> = words.collect();
                if opts.is_empty() {
                    return Err(err(lineno, "OPTION without a value".into()));
                }
                for o in opts {
                    match o {
                        "SINGLEHDR" => single = true,
                        "NOHDRS" => nohdrs = true,
                        other => return Err(err(lineno, format!("unknown option '{other}'"))),
                    }
                }
                if single && nohdrs {
                    return Err(err(
                        lineno,
                        "OPTION SINGLEHDR and OPTION NOHDRS exclude each other".into(),
                    ));
                }
                continue;
            }
            if first == "REPLICA" {
                return Err(err(
                    lineno,
                    "a remote pool set must not have a REPLICA section".into(),
                ));
            }
            let rest = line[first.len()..].trim();
            if rest.is_empty() {
                return Err(err(lineno, format!("'{first}': expected SIZE PATH")));
            }
            let part_path = PathBuf::from(rest);
            if !part_path.is_absolute() {
                return Err(err(lineno, format!("part path '{rest}' is not absolute")));
            }
            if let Some(why) = part_path_problem(rest) {
                return Err(err(
                    lineno,
                    format!("part path '{}' {why}", rest.escape_debug()),
                ));
            }
            if !seen.insert(part_path.clone()) {
                return Err(err(lineno, format!("part '{rest}' is listed twice")));
            }
            let meta = fs::metadata(&part_path).ok();
            if meta.as_ref().is_some_and(fs::Metadata::is_dir) {
                return Err(err(
                    lineno,
                    format!("part path '{rest}' is a directory, not a part file"),
                ));
            }
            let is_device = meta
                .as_ref()
                .is_some_and(|m| m.file_type().is_char_device());
            let size = if first == "AUTO" {
                let meta = meta.filter(|_| is_device).ok_or_else(|| {
                    err(
                        lineno,
                        format!(
                            "size AUTO needs a device DAX character device, '{rest}' is not one"
                        ),
                    )
                })?;
                device_size(&meta).ok_or_else(|| {
                    err(lineno, format!("cannot find the size of device '{rest}'"))
                })?
            } else {
                let size = parse_size(first)
                    .ok_or_else(|| err(lineno, format!("invalid part size '{first}'")))?;
                if size < MIN_PART {
                    return Err(err(
                        lineno,
                        format!("part size {size} is below the minimum of {MIN_PART} bytes"),
                    ));
                }
                size
            };
            total = total
                .checked_add(size / PAGE_SIZE * PAGE_SIZE)
                .filter(|&t| t <= MAX_POOL)
                .ok_or_else(|| {
                    err(
                        lineno,
                        format!("the pool set is too large: its parts exceed {MAX_POOL} bytes"),
                    )
                })?;
            parts.push(PartSpec {
                path: part_path,
                size,
                is_device,
                line: lineno,
            });
        }
        if !seen_sig {
            return Err(err(1, "the first line must be PMEMPOOLSET".into()));
        }
        if parts.is_empty() {
            return Err(err(0, "the pool set has no parts".into()));
        }
        let headers = match (single, nohdrs) {
            (_, true) => HeaderMode::None,
            (true, _) => HeaderMode::Single,
            _ => HeaderMode::All,
        };
        let set = PoolSet {
            path: path.to_path_buf(),
            parts,
            headers,
        };
        for (i, p) in set.parts.iter().enumerate() {
            if set.part_has_header(i) && p.size / PAGE_SIZE * PAGE_SIZE <= HDR_SIZE {
                return Err(err(p.line, "part too small for its header".into()));
            }
        }
        Ok(set)
    }

    /// Whether part `i` carries a header.
    pub fn part_has_header(&self, i: usize) -> bool {
        match self.headers {
            HeaderMode::All => true,
            HeaderMode::Single => i == 0,
            HeaderMode::None => false,
        }
    }

    /// Whether the pool's first 4096 bytes are its header.
    pub fn has_header(&self) -> bool {
        self.headers != HeaderMode::None
    }

    /// Bytes part `i` contributes to the remote pool, and where in the part
    /// they start: the page-aligned size minus the header (except part 0's,
    /// which is the pool's first 4 KiB).
    pub(crate) fn part_extent(&self, i: usize) -> (u64, u64) {
        let aligned = self.parts[i].size / PAGE_SIZE * PAGE_SIZE;
        if i > 0 && self.part_has_header(i) {
            (HDR_SIZE, aligned - HDR_SIZE)
        } else {
            (0, aligned)
        }
    }

    /// Size of the remote pool this set provides: page-aligned part sizes
    /// summed, minus 4 KiB for every header after the first.
    pub fn remote_size(&self) -> u64 {
        (0..self.parts.len()).map(|i| self.part_extent(i).1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PoolSet> {
        PoolSet::parse(Path::new("/etc/x.set"), text)
    }

    fn line_of(e: StorageError) -> (usize, String) {
        match e {
            StorageError::Parse { line, msg, file } => {
                assert_eq!(file, Path::new("/etc/x.set"));
                (line, msg)
            }
            other => panic!("not a parse error: {other}"),
        }
    }

    #[test]
    fn sizes_with_every_suffix() {
        let cases = [
            ("2097152", 2 << 20),
            ("2097152B", 2 << 20),
            ("4K", 4096),
            ("3M", 3 << 20),
            ("2G", 2 << 30),
            ("1T", 1 << 40),
            ("1P", 1 << 50),
            ("4KiB", 4096),
            ("3MiB", 3 << 20),
            ("2GiB", 2 << 30),
            ("1TiB", 1 << 40),
            ("1PiB", 1 << 50),
            ("5kB", 5000),
            ("3MB", 3_000_000),
            ("2GB", 2_000_000_000),
            ("1TB", 1_000_000_000_000),
            ("1PB", 1_000_000_000_000_000),
        ];
        for (s, v) in cases {
            assert_eq!(parse_size(s), Some(v), "{s}");
        }
        for bad in [
            "",
            "M",
            "12X",
            "1.5M",
            "-1M",
            "99999999999999999999",
            "20000P",
            "1 M",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn full_set_with_comments_and_options() {
        let s = parse(
            "PMEMPOOLSET\n# a comment\n\n  OPTION SINGLEHDR # trailing\n8M /a/p0\n3MB /a/p 1  \n",
        )
        .unwrap();
        assert_eq!(s.headers, HeaderMode::Single);
        assert_eq!(s.parts.len(), 2);
        assert_eq!(s.parts[0].path, Path::new("/a/p0"));
        assert_eq!(s.parts[0].size, 8 << 20);
        assert_eq!(s.parts[1].path, Path::new("/a/p 1"));
        assert_eq!(s.parts[1].line, 6);
        // 3 MB = 3000000 -> 2998272 page-aligned; single header: no deduction.
        assert_eq!(s.remote_size(), (8 << 20) + 2_998_272);
    }

    #[test]
    fn remote_size_per_header_mode() {
        let all = parse("PMEMPOOLSET\n4M /p0\n4M /p1\n4M /p2\n").unwrap();
        assert_eq!(all.headers, HeaderMode::All);
        assert_eq!(all.remote_size(), (12 << 20) - 2 * 4096);
        let none = parse("PMEMPOOLSET\nOPTION NOHDRS\n4M /p0\n4M /p1\n").unwrap();
        assert_eq!(none.headers, HeaderMode::None);
        assert_eq!(none.remote_size(), 8 << 20);
        assert!(!none.has_header());
        let single = parse("PMEMPOOLSET\nOPTION SINGLEHDR\n4M /p0\n4M /p1\n").unwrap();
        assert_eq!(single.remote_size(), 8 << 20);
        assert!(single.part_has_header(0) && !single.part_has_header(1));
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&str, usize, &str); 20] = [
            ("PMEMPOOLSET\nOPTION\n4M /p\n", 2, "without a value"),
            (
                "PMEMPOOLSET\nOPTION SINGLEHDR NOHDRS\n4M /p\n",
                2,
                "exclude",
            ),
            (
                "PMEMPOOLSET\n4M /p\n\n  # c\n4MiX /q\n",
                5,
                "invalid part size",
            ),
            ("PMEMPOOLSET extra\n4M /p\n", 1, "PMEMPOOLSET"),
            ("", 1, "PMEMPOOLSET"),
            ("# c\nPMEMPOOLSET\n4M /p\n", 1, "PMEMPOOLSET"),
            ("PMEMPOOLSET\n4M rel/p\n", 2, "not absolute"),
            ("PMEMPOOLSET\n4Q /p\n", 2, "invalid part size"),
            ("PMEMPOOLSET\n1M /p\n", 2, "below the minimum"),
            ("PMEMPOOLSET\n4M\n", 2, "expected SIZE PATH"),
            ("PMEMPOOLSET\n4M /p\nREPLICA\n4M /q\n", 3, "REPLICA"),
            (
                "PMEMPOOLSET\nOPTION SINGLEHDR\nOPTION NOHDRS\n4M /p\n",
                3,
                "exclude",
            ),
            ("PMEMPOOLSET\nOPTION BOGUS\n4M /p\n", 2, "unknown option"),
            ("PMEMPOOLSET\n4M /p\n4M /p\n", 3, "twice"),
            ("PMEMPOOLSET\n# nothing\n", 0, "no parts"),
            ("PMEMPOOLSET\n4M /p/.\n", 2, "names a directory"),
            ("PMEMPOOLSET\n4M /p/\n", 2, "names a directory"),
            ("PMEMPOOLSET\n4M /p/..\n", 2, "names a directory"),
            ("PMEMPOOLSET\n4M /p\0q\n", 2, "NUL byte"),
            ("PMEMPOOLSET\n4M /tmp\n", 2, "is a directory"),
        ];
        for (text, line, needle) in cases {
            let (l, msg) = line_of(parse(text).unwrap_err());
            assert_eq!(l, line, "{text:?}: {msg}");
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
    }

    #[test]
    fn sizes_that_overflow_are_refused() {
        // 2^63 + 2^63 + 32M wraps to 32 MiB in u64.
        let text = "PMEMPOOLSET\n9223372036854775808 /a\n9223372036854775808 /b\n32M /c\n";
        let (l, msg) = line_of(parse(text).unwrap_err());
        assert!(msg.contains("too large"), "{msg}");
        assert!(l == 2 || l == 3, "{l}");
        // Parts that fit one by one but not together.
        let text = "PMEMPOOLSET\n4611686018427387904 /a\n4611686018427387904 /b\n";
        let (l, msg) = line_of(parse(text).unwrap_err());
        assert_eq!(l, 3);
        assert!(msg.contains("too large"), "{msg}");
        // The largest total that fits off_t is fine.
        let ok =
            parse("PMEMPOOLSET\nOPTION NOHDRS\n4611686018427387904 /a\n4611686018427383808 /b\n")
                .unwrap();
        assert_eq!(ok.remote_size(), i64::MAX as u64 - 4095);
    }

    #[test]
    fn many_parts_parse_in_linear_time() {
        // 100,000 parts took minutes when each was compared with every
        // earlier one; linear parsing takes well under a second.
        let n = 100_000;
        let mut text = String::from("PMEMPOOLSET\n");
        for i in 0..n {
            text.push_str(&format!("2M /nonexistent/rpmem/part{i}\n"));
        }
        let t = std::time::Instant::now();
        let s = parse(&text).unwrap();
        assert_eq!(s.parts.len(), n);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t.elapsed()
        );
        // A duplicate at the end is still found.
        text.push_str("2M /nonexistent/rpmem/part7\n");
        let (l, msg) = line_of(parse(&text).unwrap_err());
        assert_eq!(l, n + 2);
        assert!(msg.contains("twice"), "{msg}");
    }

    #[test]
    fn auto_is_only_for_char_devices() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        fs::write(&file, b"").unwrap();
        let text = format!("PMEMPOOLSET\nAUTO {}\n", file.display());
        let (l, msg) = line_of(parse(&text).unwrap_err());
        assert_eq!(l, 2);
        assert!(msg.contains("device DAX"), "{msg}");
        // /dev/null is a char device without a sysfs size: refused, not guessed.
        let (_, msg) = line_of(parse("PMEMPOOLSET\nAUTO /dev/null\n").unwrap_err());
        assert!(msg.contains("size"), "{msg}");
    }

    #[test]
    fn error_display_names_file_and_line() {
        let e = parse("PMEMPOOLSET\n4Q /p\n").unwrap_err();
        assert!(e.to_string().starts_with("/etc/x.set:2: "), "{e}");
        // A problem of the whole file names the file alone.
        let e = parse("PMEMPOOLSET\n").unwrap_err();
        assert_eq!(e.to_string(), "/etc/x.set: the pool set has no parts");
    }

    #[test]
    fn load_names_the_file_for_unreadable_and_non_utf8_sets() {
        let d = std::env::temp_dir().join(format!("poolset-load-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let bad = d.join("bin.set");
        fs::write(&bad, b"PMEMPOOLSET\n4M /p\xff\n").unwrap();
        let e = PoolSet::load(&bad).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("{}: ", bad.display())),
            "{e}"
        );
        assert!(e.to_string().contains("UTF-8"), "{e}");
        let missing = d.join("missing.set");
        let e = PoolSet::load(&missing).unwrap_err();
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        assert_eq!(e.errno(), libc::ENOENT);
        fs::remove_dir_all(&d).unwrap();
    }
}
