//! The consent recording service: see `prolo_recorder::commands::CONSENT`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prolo_recorder::main_for(&prolo_recorder::commands::CONSENT).await
}
