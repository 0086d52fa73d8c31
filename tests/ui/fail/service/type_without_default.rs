use hosted::prelude::*;

#[hosted_service]
struct Cache {
    size: usize,
}

impl HostedService for Cache {
    type Error = std::convert::Infallible;

    async fn start(&mut self, _: CancellationToken) -> Result<(), Self::Error> {
        println!("{}", self.size);
        Ok(())
    }

    async fn stop(&mut self, _: CancellationToken) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
