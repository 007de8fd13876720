//! `kube-emulator`: see `kube_emulator::cli`.

fn main() -> fluo_cli::exit::Exit {
    kube_emulator::cli::main()
}
