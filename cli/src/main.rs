//! The `metergate` binary: everything lives in the library so that other commands can reuse it.

/// mimalloc instead of the system allocator: the check path makes a few small allocations per
/// record, which mimalloc serves in about half the instructions of glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    metergate::run()
}
