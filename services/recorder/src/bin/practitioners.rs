//! The practitioners recording service: see `prolo_recorder::commands::PRACTITIONERS`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prolo_recorder::main_for(&prolo_recorder::commands::PRACTITIONERS).await
}
