//! The `metergate` binary: everything lives in the library so that other commands can reuse it.

fn main() -> std::process::ExitCode {
    metergate::run()
}
