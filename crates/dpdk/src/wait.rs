//! Sleeping until a frame arrives, for a worker that shares its CPU.
//!
//! An idle worker naps (rvsd's idle back-off), and a frame that arrives
//! during a plain nap waits for its end: up to the longest nap, after
//! every lull. DPDK's way to sleep until traffic is Rx interrupts
//! (`rte_eth_dev_rx_intr_*`), which net_af_packet (22.11) does not
//! implement. An af_packet queue is a kernel socket with a receive ring,
//! though, and poll(2) on it returns as soon as the kernel has put a frame
//! in the ring that the PMD has not taken yet. So a nap becomes a `ppoll`
//! on the worker's queues' sockets, bounded by the nap: it ends at the
//! first frame. Ports whose driver has no such socket nap as before.
//!
//! Frames another worker hands over come through a ring, which has no
//! socket: the ring's doorbell (an eventfd, `ring.rs`) is polled with the
//! sockets, and a producer rings it when the consumer naps.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::port::{PortInner, RxQueue};
use crate::ring::{RingConsumer, RingInner};

/// The driver whose queues are kernel sockets.
const AF_PACKET_DRIVER: &str = "net_af_packet";

/// The receive sockets of a worker's queues, and its inbox's doorbell, to
/// sleep on.
pub struct RxWait {
    /// One entry per socket (and the doorbell), in poll(2)'s form.
    polled: Vec<libc::pollfd>,
    /// The ports whose sockets `polled` are: a port closes its sockets
    /// only when it is dropped, which this keeps from happening while we
    /// may still poll them.
    _ports: Vec<Arc<PortInner>>,
    /// The inbox ring whose doorbell `polled` has (kept open likewise),
    /// marked asleep around each wait.
    inbox: Option<Arc<RingInner>>,
}

impl RxWait {
    /// The sockets `queues` read, where their driver reads one, and the
    /// doorbell of `inbox`, the ring other workers hand frames over in.
    pub fn new(queues: &[&RxQueue], inbox: Option<&RingConsumer>) -> RxWait {
        let (mut fds, ports): (Vec<RawFd>, _) = queues
            .iter()
            .filter_map(|q| Some((af_packet_socket(q)?, q.port.clone())))
            .unzip();
        let inbox = inbox.map(|r| {
            let (fd, ring) = r.doorbell();
            fds.push(fd);
            ring
        });
        let mut w = RxWait::watching(fds, ports);
        w.inbox = inbox;
        w
    }

    /// A wait on `fds` (each queue's own socket), keeping `ports` open.
    fn watching(fds: Vec<RawFd>, ports: Vec<Arc<PortInner>>) -> RxWait {
        let polled = fds
            .into_iter()
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        RxWait {
            polled,
            _ports: ports,
            inbox: None,
        }
    }

    /// Sleeps until a frame waits in one of the sockets, the doorbell
    /// rings, or for `timeout`. True when one of those ended it, or when a
    /// frame was handed over already (no sleep then). With nothing to
    /// poll, a plain sleep.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        // Marked asleep, the inbox's producers ring its doorbell as they
        // hand frames over; one handed over before the mark ends the wait
        // at once.
        let queued = self.inbox.as_ref().is_some_and(|i| !i.doze());
        let woken = queued || self.poll(timeout);
        if let Some(inbox) = &self.inbox {
            inbox.wake();
        }
        woken
    }

    /// [`RxWait::wait`]'s sleep.
    fn poll(&mut self, timeout: Duration) -> bool {
        if self.polled.is_empty() {
            std::thread::sleep(timeout);
            return false;
        }
        let start = Instant::now();
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `polled` is a valid array of its length, `ts` a valid
        // timespec, no signal mask. (A descriptor closed meanwhile would
        // only be reported as POLLNVAL: the PMD closes its sockets when the
        // port stops, which rvs does only when dropping the port, and
        // `_ports` keeps ours alive; `inbox` keeps the doorbell open.)
        let n = unsafe {
            libc::ppoll(
                self.polled.as_mut_ptr(),
                self.polled.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if n > 0 && self.polled.iter().any(|p| p.revents & libc::POLLIN != 0) {
            return true;
        }
        // No frame: a signal, or a socket error. poll(2) reports an error
        // (ENETDOWN when the interface goes down) until it is read, and the
        // PMD never reads it: read it here, forget a descriptor that is no
        // longer open, and sleep out the nap rather than spin.
        for p in &self.polled {
            if p.revents & libc::POLLERR != 0 {
                clear_socket_error(p.fd);
            }
        }
        self.polled.retain(|p| p.revents & libc::POLLNVAL == 0);
        if let Some(rest) = timeout.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
        false
    }
}

/// Reads (and so clears) a socket's pending error.
fn clear_socket_error(fd: RawFd) {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` has room for the `len` bytes SO_ERROR writes; on a bad
    // descriptor the call fails and writes nothing.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        );
    }
}

/// The kernel socket an af_packet queue reads; `None` for other drivers.
///
/// The PMD does not say which descriptor a queue has, so it is found among
/// the process's own: the AF_PACKET sockets bound to the port's interface.
/// The PMD opens them one per queue pair in queue order, in one loop that
/// closes nothing, so they have ascending numbers: the queue's is the
/// queue's index in that order. When the count is not the port's queue
/// count (a `qpairs` above the workers', or a socket of someone else's),
/// the queue keeps plain naps: a socket that no worker drains would end
/// every nap at once.
fn af_packet_socket(q: &RxQueue) -> Option<RawFd> {
    let mut info = dpdk_sys::rte_eth_dev_info::default();
    // SAFETY: valid port id (the queue's port is started) and out-pointer.
    if unsafe { dpdk_sys::rte_eth_dev_info_get(q.port_id(), &mut info) } != 0
        || info.driver_name.is_null()
    {
        return None;
    }
    // SAFETY: DPDK sets driver_name to the driver's static, NUL-terminated
    // name.
    let driver = unsafe { CStr::from_ptr(info.driver_name) };
    if driver.to_bytes() != AF_PACKET_DRIVER.as_bytes() || info.if_index == 0 {
        return None;
    }
    let fds = packet_sockets_on(info.if_index as usize);
    if fds.len() != usize::from(info.nb_rx_queues) {
        return None;
    }
    fds.get(usize::from(q.queue_id())).copied()
}

/// This process's AF_PACKET sockets bound to interface `ifindex`, in
/// ascending order.
fn packet_sockets_on(ifindex: usize) -> Vec<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| packet_socket_ifindex(fd) == Some(ifindex))
        .collect();
    fds.sort_unstable();
    fds
}

/// The interface an AF_PACKET socket is bound to; `None` for any other
/// descriptor (or one closed meanwhile: the listing's own, for one).
fn packet_socket_ifindex(fd: RawFd) -> Option<usize> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` has room for `len` bytes; getsockname writes at most
    // that many (an Ethernet device's address is 18), and fails with
    // ENOTSOCK or EBADF on a descriptor that is no socket.
    let rc = unsafe {
        libc::getsockname(
            fd,
            &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
            &mut len,
        )
    };
    (rc == 0 && i32::from(addr.sll_family) == libc::AF_PACKET).then_some(addr.sll_ifindex as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// An AF_PACKET socket bound to `ifindex`, as the PMD makes them
    /// (without the ring: poll(2) then looks at the receive queue).
    fn packet_socket(ifindex: i32) -> OwnedFd {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: a plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
        assert!(fd >= 0, "an AF_PACKET socket needs root (CAP_NET_RAW)");
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = all;
        addr.sll_ifindex = ifindex;
        // SAFETY: `addr` is a sockaddr_ll of the length given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        fd
    }

    #[test]
    #[ignore = "needs root (AF_PACKET sockets); run with cargo xtask test"]
    fn finds_packet_sockets_and_wakes_at_a_frame() {
        // The loopback interface is always index 1.
        let lo = 1;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(packet_socket_ifindex(udp.as_raw_fd()), None);
        assert_eq!(packet_socket_ifindex(-1), None);
        let (a, b) = (packet_socket(lo), packet_socket(lo));
        assert_eq!(packet_socket_ifindex(a.as_raw_fd()), Some(lo as usize));
        let on_lo = packet_sockets_on(lo as usize);
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        assert!(on_lo.contains(&fa) && on_lo.contains(&fb), "{on_lo:?}");
        assert!(
            on_lo.windows(2).all(|w| w[0] < w[1]),
            "ascending: {on_lo:?}"
        );

        let mut wait = RxWait::watching(vec![fa], Vec::new());
        // A datagram to ourselves crosses lo, so the socket has a frame
        // waiting: the wait ends at once, not at its timeout. (That it
        // sleeps without one is not asserted: other processes may talk
        // over lo.)
        udp.send_to(b"wake", udp.local_addr().unwrap()).unwrap();
        let t = std::time::Instant::now();
        assert!(
            wait.wait(Duration::from_secs(5)),
            "a frame on lo ends the wait"
        );
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_descriptor_that_is_not_open_is_dropped_not_spun_on() {
        // Far above any descriptor this process has: poll(2) says POLLNVAL.
        let mut wait = RxWait::watching(vec![1 << 30], Vec::new());
        let t = std::time::Instant::now();
        assert!(!wait.wait(Duration::from_millis(50)));
        assert!(
            t.elapsed() >= Duration::from_millis(50),
            "slept out the nap"
        );
        assert!(wait.polled.is_empty());
    }
}
