use hosted::prelude::*;

#[cron("@hourly")]
async fn count() -> Result<u32, String> {
    Ok(1)
}

fn main() {}
