//! The treatment recording service: see `prolo_recorder::commands::TREATMENT`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prolo_recorder::main_for(&prolo_recorder::commands::TREATMENT).await
}
