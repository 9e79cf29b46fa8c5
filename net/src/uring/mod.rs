//! io_uring transfer backend (placeholder until the ring lands: start() reports unavailable).
#![allow(unsafe_code)]

use std::io;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::command::FileRegion;

pub struct Ring;

impl Ring {
    pub fn start() -> io::Result<Arc<Ring>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring backend not built yet",
        ))
    }

    pub async fn write_regions(
        &self,
        sock: &TcpStream,
        head: &[u8],
        regions: &[Arc<dyn FileRegion>],
    ) -> io::Result<()> {
        let _ = (sock, head, regions);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring backend not built yet",
        ))
    }
}
