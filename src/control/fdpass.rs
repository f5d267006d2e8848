//! File-descriptor passing (SCM_RIGHTS) over a Unix stream socket: one message carries some bytes and
//! up to [`MAX_FDS`] descriptors. Used between the privileged supervisor and the serving process
//! (see [`super::supervisor`]), but independent of it.
//!
//! Framing: a message is `u32` little-endian length + payload; the descriptors ride on the first
//! `sendmsg` of the message (the kernel attaches them to the first byte), and `recv` collects them from
//! the first `recvmsg`. Received descriptors are `OwnedFd` with `FD_CLOEXEC` set (`MSG_CMSG_CLOEXEC`).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// At most this many descriptors per message (plenty for a listen set).
pub const MAX_FDS: usize = 64;
/// Largest payload accepted (a configuration tree): 64 MiB.
pub const MAX_PAYLOAD: usize = 64 << 20;

fn cmsg_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((n * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Sends `payload` and `fds` as one message.
pub fn send(sock: &UnixStream, payload: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors",
        ));
    }
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l as usize <= MAX_PAYLOAD)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(payload);

    // The first sendmsg carries the descriptors; the rest of the frame follows with plain writes.
    let mut cbuf = vec![0u8; cmsg_space(fds.len().max(1))];
    let mut iov = libc::iovec {
        iov_base: frame.as_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below stays valid until sendmsg returns.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = cmsg_space(fds.len()) as _;
        // SAFETY: msg_control points at a buffer of CMSG_SPACE(n fds) bytes, so the first header and
        // its data area of n descriptors fit.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * std::mem::size_of::<RawFd>()) as u32) as _;
            let data = libc::CMSG_DATA(c) as *mut RawFd;
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
    }
    let sent = loop {
        // SAFETY: msg is fully initialised above.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    (&*sock).write_all(&frame[sent..])
}

/// Receives one message: its payload and the descriptors that came with it.
pub fn recv(sock: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut head = [0u8; 4];
    let mut cbuf = vec![0u8; cmsg_space(MAX_FDS)];
    let mut iov = libc::iovec {
        iov_base: head.as_mut_ptr() as *mut libc::c_void,
        iov_len: head.len(),
    };
    // SAFETY: msghdr is plain data; its pointers stay valid until recvmsg returns.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = cbuf.len() as _;
    let got = loop {
        // SAFETY: msg is initialised; MSG_CMSG_CLOEXEC only sets a flag on received descriptors.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // Take ownership of every descriptor first, so none leaks whatever happens next.
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_* walk only within them, and each
    // SCM_RIGHTS descriptor is a fresh one this process now owns.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const RawFd;
                let bytes = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if got == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "descriptors truncated",
        ));
    }
    (&*sock).read_exact(&mut head[got..])?;
    let len = u32::from_le_bytes(head) as usize;
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "payload too large",
        ));
    }
    let mut payload = vec![0u8; len];
    (&*sock).read_exact(&mut payload)?;
    Ok((payload, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn bytes_and_a_listening_socket_cross_over() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let payload = vec![7u8; 300_000];
        let t = std::thread::spawn(move || {
            send(&a, &payload, &[l.as_fd()]).expect("send");
            send(&a, b"second", &[]).expect("send 2");
        });
        let (got, mut fds) = recv(&b).expect("recv");
        t.join().expect("sender");
        assert_eq!(got.len(), 300_000);
        assert!(got.iter().all(|&x| x == 7));
        assert_eq!(fds.len(), 1);
        // The received descriptor is the same listening socket: a client connects through it.
        let received = TcpListener::from(fds.remove(0));
        assert_eq!(received.local_addr().expect("addr"), addr);
        let _c = TcpStream::connect(addr).expect("connect");
        let (_s, _) = received.accept().expect("accept");
        let (second, fds2) = recv(&b).expect("recv 2");
        assert_eq!(second, b"second");
        assert!(fds2.is_empty());
    }

    #[test]
    fn eof_is_an_error() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        drop(a);
        assert!(recv(&b).is_err());
    }
}
