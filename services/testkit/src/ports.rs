//! Ports free on 127.0.0.1 now: nothing holds them once the function returns, so another
//! process may take one before the test binds it (rare; the SIPp tests retry where it hurts).

use std::net::{TcpListener, UdpSocket};

/// A TCP port free on 127.0.0.1 now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

/// A UDP port free on 127.0.0.1 now whose TCP twin is free too (a SIP listener binds both).
pub fn free_udp_port() -> u16 {
    udp_port(false)
}

/// An even UDP port free on 127.0.0.1 now whose next port (RTCP) and TCP twin are free too:
/// an RTP port.
pub fn free_rtp_port() -> u16 {
    udp_port(true)
}

fn udp_port(even: bool) -> u16 {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        let port = s.local_addr().expect("its address").port();
        if even && (port % 2 == 1 || UdpSocket::bind(("127.0.0.1", port + 1)).is_err()) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rtp_port_is_even_and_bindable_with_its_successor() {
        let port = free_rtp_port();
        assert_eq!(port % 2, 0);
        let _rtp = UdpSocket::bind(("127.0.0.1", port)).expect("the port");
        let _rtcp = UdpSocket::bind(("127.0.0.1", port + 1)).expect("the next port");
        let _tcp = TcpListener::bind(("127.0.0.1", port)).expect("the TCP twin");
    }

    #[test]
    fn a_udp_port_has_a_free_tcp_twin() {
        let port = free_udp_port();
        let _udp = UdpSocket::bind(("127.0.0.1", port)).expect("the port");
        let _tcp = TcpListener::bind(("127.0.0.1", port)).expect("the TCP twin");
        let _ = TcpListener::bind(("127.0.0.1", free_tcp_port())).expect("a TCP port");
    }
}
