//! The examination recording service: see `prolo_recorder::commands::EXAMINATION`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    prolo_recorder::main_for(&prolo_recorder::commands::EXAMINATION).await
}
