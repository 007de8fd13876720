//! `kube-emulator`: see `kube_emulator::cli`.

fn main() -> std::process::ExitCode {
    kube_emulator::cli::main()
}
