use hosted::prelude::*;

#[hosted_service(constructor = "Pool::connect")]
struct Pool {
    url: String,
}

impl Pool {
    fn connect(url: String) -> Pool {
        Pool { url }
    }
}

impl HostedService for Pool {
    type Error = std::io::Error;
    async fn start(&mut self, _cancel: CancellationToken) -> Result<(), Self::Error> {
        println!("{}", self.url);
        Ok(())
    }
    async fn stop(&mut self, _deadline: CancellationToken) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn main() {}
