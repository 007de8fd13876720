//! `fluo-local-stack`: see `fluo_teststack::local_stack`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fluo_teststack::local_stack::main().await
}
