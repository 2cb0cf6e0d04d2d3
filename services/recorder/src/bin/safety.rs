//! The safety recording service: see `prolo_recorder::commands::SAFETY`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prolo_recorder::main_for(&prolo_recorder::commands::SAFETY).await
}
