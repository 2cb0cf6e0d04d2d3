//! The corrections recording service: see `prolo_recorder::commands::CORRECTIONS`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prolo_recorder::main_for(&prolo_recorder::commands::CORRECTIONS).await
}
