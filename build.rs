//! Rebuild when migrations or templates change: both are embedded at compile time.
//!
//! Release builds of the `herald` binary on x86-64 GNU/Linux also get two linker flags that
//! shrink what a running process keeps resident (P5, see the README's Performance table):
//!
//! - `-z pack-relative-relocs`: the binary's 70,000 relative relocations are stored as a
//!   bitmap (`DT_RELR`, 27 KB) instead of a 1.7 MB table the loader reads, and keeps mapped,
//!   at every start. It needs glibc 2.36 or later where the binary runs (the loader refuses
//!   an older one by name: `GLIBC_ABI_DT_RELR`), so it is only used when the C library of the
//!   building machine is 2.36 or later and the binary is built for that machine.
//! - `--icf=all`: identical functions (the same generic code instantiated for several types)
//!   are kept once.
//! - `--symbol-ordering-file=scripts/startup-symbols.txt`: the 4,000 functions a start of
//!   `herald serve` runs (of 17,700) are placed first, next to each other. The kernel maps
//!   the cached pages around every page of code a process touches (fault-around, 64 KB), so
//!   start-up code scattered through the 12.1 MiB of code kept 86% of it resident; in one
//!   block it keeps 4.5 MiB (-6 MiB of idle memory). `scripts/order-startup-symbols`
//!   regenerates the list; names it holds that a build no longer has are skipped, so a stale
//!   list costs memory, never correctness.
//!
//! All three are understood by LLD, which rustc uses to link on x86-64 GNU/Linux since 1.90.

use std::process::Command;

/// The functions a start of `herald serve` runs, in link order (see the module docs).
const STARTUP_SYMBOLS: &str = "scripts/startup-symbols.txt";

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed={STARTUP_SYMBOLS}");
    if !release_for_this_x86_64_gnu_linux() {
        return;
    }
    if glibc_2_36_or_later() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = std::path::Path::new(&dir).join(STARTUP_SYMBOLS);
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // A name the build does not have (a stale list) is no error.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether this is a release build for x86-64 GNU/Linux, on such a machine (linked by LLD).
fn release_for_this_x86_64_gnu_linux() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    var("PROFILE") == "release"
        && var("TARGET") == var("HOST")
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
}

/// Whether the C library of the building machine is glibc 2.36 or later.
fn glibc_2_36_or_later() -> bool {
    // "glibc 2.36"
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (2, 36)
}
