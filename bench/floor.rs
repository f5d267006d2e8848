//! The floor under the throughput goals: a "proxy" that does nothing but move bytes.
//!
//! ```sh
//! cargo run --release --example floor -- epoll|uring LISTEN UPSTREAM[,UPSTREAM...]
//! ```
//!
//! Each client connection gets its own upstream connection (round robin over the upstreams,
//! opened once, as with a large `keepalive`), and then the two take turns: one read from the
//! client, that many bytes to the upstream, one read from the upstream, that many bytes back.
//! No parsing, no headers, no pool, no timers, no logging. That is correct only while one read
//! holds one whole request or response, which is what wrk's small GETs and the benchmark's
//! `return 200` backends give on 127.0.0.1; it is a measuring instrument, not a proxy.
//!
//! What it measures (`bench/profile.sh` runs it next to nginx and nginx-rs): the CPU per request
//! of the system calls and TCP work that any proxy of these requests pays, with next to no user
//! time on top. `epoll`: tokio's current-thread runtime, the same four system calls per request
//! as nginx-rs (two receives, two sends) plus its share of `epoll_wait`. `uring`: the same
//! receives and sends as io_uring operations, submitted and reaped in batches, so one
//! `io_uring_enter` serves many of them.

use std::net::SocketAddr;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: floor epoll|uring LISTEN UPSTREAM[,UPSTREAM...]";
    let [mode, listen, upstreams] = &args[..] else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen
        .parse()
        .unwrap_or_else(|e| fail(&format!("{listen}: {e}")));
    let upstreams: Vec<SocketAddr> = upstreams
        .split(',')
        .map(|u| u.parse().unwrap_or_else(|e| fail(&format!("{u}: {e}"))))
        .collect();
    let ran = match mode.as_str() {
        "epoll" => epoll::run(listen, upstreams),
        "uring" => uring::run(listen, upstreams),
        _ => fail(usage),
    };
    if let Err(e) = ran {
        fail(&e.to_string());
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("floor: {msg}");
    std::process::exit(1);
}

/// Readiness and non-blocking system calls, on tokio's current-thread runtime.
mod epoll {
    use std::io;
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    pub fn run(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        rt.block_on(async {
            let listener = TcpListener::bind(listen).await?;
            for next in 0.. {
                let (client, _) = listener.accept().await?;
                let upstream = upstreams[next % upstreams.len()];
                tokio::spawn(async move {
                    let _ = shuttle(client, upstream).await;
                });
            }
            Ok(())
        })
    }

    async fn shuttle(mut client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
        let mut upstream = TcpStream::connect(upstream).await?;
        client.set_nodelay(true)?;
        upstream.set_nodelay(true)?;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // tokio clears a socket's readiness after a short read, so each of these is one
            // system call when the bytes are there, and no `EAGAIN` attempt before the next.
            let n = client.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            upstream.write_all(&buf[..n]).await?;
            let n = upstream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            client.write_all(&buf[..n]).await?;
        }
    }
}

/// Completions: the receives and sends are io_uring operations, one in flight per connection
/// pair at a time, all of a turn submitted with one `io_uring_enter` that also waits.
mod uring {
    use std::io;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};

    use io_uring::{opcode, types, IoUring};
    use slab::Slab;

    const ACCEPT: u64 = u64::MAX;
    const BUF: usize = 16 * 1024;

    /// What a pair's one operation in flight is.
    #[derive(Clone, Copy)]
    enum Op {
        ClientRecv = 0,
        UpstreamSend = 1,
        UpstreamRecv = 2,
        ClientSend = 3,
    }

    struct Pair {
        client: TcpStream,
        upstream: TcpStream,
        /// Boxed: its address is handed to the kernel and must not move when the slab grows.
        buf: Box<[u8; BUF]>,
        /// Bytes the send in flight was given (a short send ends the pair).
        sending: usize,
    }

    pub fn run(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> io::Result<()> {
        let listener = TcpListener::bind(listen)?;
        // Kernel 6.1+: one thread submits everything, and completions are run when it waits
        // (not by interrupting it). An older kernel gets a plain ring.
        let mut ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(4096)
            .or_else(|_| IoUring::new(4096))?;
        let mut pairs: Slab<Pair> = Slab::new();
        let mut next = 0usize;
        let accept = opcode::Accept::new(
            types::Fd(listener.as_raw_fd()),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .build()
        .user_data(ACCEPT);
        push(&mut ring, &accept)?;
        let mut done = Vec::with_capacity(1024);
        loop {
            ring.submit_and_wait(1)?;
            done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
            for (data, res) in done.drain(..) {
                if data == ACCEPT {
                    if res >= 0 {
                        // SAFETY: the kernel handed us this new descriptor; nothing else owns it.
                        let client = unsafe { TcpStream::from_raw_fd(res as RawFd) };
                        // A blocking connect, on the loop: it happens once per client
                        // connection, in the warm-up, not in the measured part.
                        let to = upstreams[next % upstreams.len()];
                        next += 1;
                        let upstream = match TcpStream::connect(to) {
                            Ok(u) => u,
                            Err(e) => {
                                eprintln!("floor: {to}: {e}");
                                push(&mut ring, &accept)?;
                                continue;
                            }
                        };
                        client.set_nodelay(true)?;
                        upstream.set_nodelay(true)?;
                        let key = pairs.insert(Pair {
                            client,
                            upstream,
                            buf: Box::new([0; BUF]),
                            sending: 0,
                        });
                        start(&mut ring, &mut pairs, key, Op::ClientRecv, BUF)?;
                    }
                    push(&mut ring, &accept)?;
                    continue;
                }
                let key = (data >> 2) as usize;
                let next_op = match data & 3 {
                    0 => Op::UpstreamSend,
                    1 => Op::UpstreamRecv,
                    2 => Op::ClientSend,
                    _ => Op::ClientRecv,
                };
                let was_recv = data & 1 == 0;
                // An end, an error, or (for a send) a short write: the pair is done. Its one
                // operation has completed, so the kernel holds no pointer into it any more.
                if res <= 0 || (!was_recv && res as usize != pairs[key].sending) {
                    pairs.remove(key);
                    continue;
                }
                let len = if was_recv { res as usize } else { BUF };
                start(&mut ring, &mut pairs, key, next_op, len)?;
            }
        }
    }

    /// Queues pair `key`'s next operation: a receive into its buffer, or a send of `len` bytes.
    fn start(
        ring: &mut IoUring,
        pairs: &mut Slab<Pair>,
        key: usize,
        op: Op,
        len: usize,
    ) -> io::Result<()> {
        let pair = &mut pairs[key];
        let fd = |s: &TcpStream| types::Fd(s.as_raw_fd());
        let room = BUF as u32;
        let ptr = pair.buf.as_mut_ptr();
        let entry = match op {
            Op::ClientRecv => opcode::Recv::new(fd(&pair.client), ptr, room).build(),
            Op::UpstreamRecv => opcode::Recv::new(fd(&pair.upstream), ptr, room).build(),
            Op::UpstreamSend | Op::ClientSend => {
                pair.sending = len;
                let to = if matches!(op, Op::UpstreamSend) {
                    &pair.upstream
                } else {
                    &pair.client
                };
                opcode::Send::new(fd(to), ptr, len as u32).build()
            }
        };
        push(ring, &entry.user_data(((key as u64) << 2) | op as u64))
    }

    /// Queues an entry, submitting what is queued first if the submission queue is full.
    fn push(ring: &mut IoUring, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points to is a pair's boxed buffer, which stays in
            // place until that pair's operation completes (pairs are removed only then).
            if unsafe { ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }
}
