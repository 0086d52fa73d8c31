//! One HTTP/1.1 request over a plain socket, for tests of the web host and
//! the examples' routes: no client crate to build. Std only, so that the
//! examples' tests can include this file by path.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `method path` to `authority` (`127.0.0.1:port`, an `http://`
/// prefix allowed) and returns the status line and the body, or the
/// connection's error.
pub fn request(authority: &str, method: &str, path: &str) -> std::io::Result<(String, String)> {
    let authority = authority.trim_start_matches("http://");
    let address = std::net::ToSocketAddrs::to_socket_addrs(authority)?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
