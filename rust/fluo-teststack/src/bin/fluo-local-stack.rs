//! `fluo-local-stack`: see `fluo_teststack::local_stack`.

#[tokio::main]
async fn main() -> fluo_cli::exit::Exit {
    fluo_teststack::local_stack::main().await
}
