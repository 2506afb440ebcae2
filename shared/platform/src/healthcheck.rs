//! `<service> healthcheck`: asks the running service's `/readyz` and exits 0
//! when it answers 200. Container images carry no HTTP client, so the binary
//! checks itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Env;

pub fn probe(env: &Env, default_port: u16) -> ExitCode {
    let configured: SocketAddr = env
        .parse("HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], default_port)))
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], default_port)));
    // A service listening on all interfaces is asked on loopback.
    let addr = SocketAddr::from(([127, 0, 0, 1], configured.port()));
    match ready(addr) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("not ready: http://{addr}/readyz did not answer 200");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("not ready: http://{addr}/readyz: {error}");
            ExitCode::FAILURE
        }
    }
}

fn ready(addr: SocketAddr) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.1 200"))
}
