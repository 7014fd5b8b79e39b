use std::collections::BTreeSet;
use std::ffi::CString;
use std::sync::{Arc, Mutex};

use crate::eal::Eal;
use crate::error::{check, DpdkError, Result};
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::MAX_BURST;

/// A port's Ethernet address: the wire format's type (`rvs-packet`'s,
/// which needs no DPDK), so that what a port reports compares and prints
/// as the frames do.
pub use rvs_packet::ethernet::MacAddr;

/// How to bring a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub promiscuous: bool,
    /// With several receive queues: hash the client endpoint alone
    /// (source address and port) under this Toeplitz key, through the
    /// redirection table [`reta_queue`] describes, where the port can.
    /// Then a client's packets reach the queue of the worker that owns its
    /// connections (`rvs_dataplane::FlowSharding`). See [`RssMode`].
    pub rss_key: Option<[u8; RSS_KEY_LEN]>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
            rss_key: None,
        }
    }
}

/// Length of the Toeplitz key [`PortConfig::rss_key`] takes; a port with
/// a longer key gets it padded with zeros (bits the at most 18 bytes of an
/// endpoint never reach).
pub const RSS_KEY_LEN: usize = 40;

/// The period of the redirection table rvsd programs: entry `i` names
/// queue `(i % RETA_PERIOD) % queues`. On any table whose size is a
/// multiple of it (128 and 512 are common), or a divisor of it that the
/// queue count divides, a hash's queue is then [`reta_queue`] of it.
pub const RETA_PERIOD: u32 = 128;

/// The receive queue (of `queues`) that a port programmed by
/// [`PortConfig::rss_key`] puts a packet with this RSS hash on.
#[inline]
pub fn reta_queue(hash: u32, queues: usize) -> usize {
    (hash % RETA_PERIOD) as usize % queues.max(1)
}

/// How a started port spreads what it receives over its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssMode {
    /// One receive queue, or no key asked for: nothing arranged.
    NotAsked,
    /// Toeplitz over the source address and port, under
    /// [`PortConfig::rss_key`], through rvsd's redirection table.
    ClientEndpoint,
    /// The port's own RSS over these hash types (`rss_hf`): it cannot
    /// hash the source alone, or refused rvsd's key or table.
    PortsOwn(u64),
    /// The port offers no RSS that can be asked for (virtual devices such
    /// as af_packet spread by themselves, or not at all).
    Unavailable,
}

impl std::fmt::Display for RssMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RssMode::NotAsked => f.write_str("not asked for"),
            RssMode::ClientEndpoint => f.write_str(
                "on the client endpoint (source address and port): a client's packets reach \
                 the worker that owns them",
            ),
            RssMode::PortsOwn(hf) => write!(
                f,
                "the port's own (rss_hf {hf:#x}; it cannot hash the source alone or refused \
                 the key or table): packets are handed to the worker that owns them"
            ),
            RssMode::Unavailable => {
                f.write_str("none the port offers: packets are handed to the worker that owns them")
            }
        }
    }
}

/// What [`Port::start`] asks of a port's RSS: its mode, and the `rss_hf`
/// to configure (0: none).
fn plan_rss(
    rx_queues: u16,
    key: Option<&[u8; RSS_KEY_LEN]>,
    offloads: u64,
    reta_size: u16,
    hash_key_size: u8,
) -> (RssMode, u64) {
    if rx_queues <= 1 {
        return (RssMode::NotAsked, 0);
    }
    let hf = offloads & RSS_L3_L4;
    let fallback = if hf == 0 {
        (RssMode::Unavailable, 0)
    } else {
        (RssMode::PortsOwn(hf), hf)
    };
    if key.is_none() {
        return fallback;
    }
    let reta = u32::from(reta_size);
    let reta_fits = reta != 0
        && (reta.is_multiple_of(RETA_PERIOD)
            || (RETA_PERIOD.is_multiple_of(reta) && reta.is_multiple_of(u32::from(rx_queues))));
    // A port that does not say how long its key is gets none from us
    // (ethdev may hold the length we pass against it).
    let key_fits = usize::from(hash_key_size) >= RSS_KEY_LEN;
    if offloads & RSS_SOURCE_ONLY == RSS_SOURCE_ONLY
        && offloads & RSS_IPV4_TCP != 0
        && reta_fits
        && key_fits
    {
        (RssMode::ClientEndpoint, hf | RSS_SOURCE_ONLY)
    } else {
        fallback
    }
}

/// Basic counters of a port (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// RTE_ETH_RSS_{IPV4,NONFRAG_IPV4_TCP,NONFRAG_IPV4_UDP,IPV6,NONFRAG_IPV6_TCP,
/// NONFRAG_IPV6_UDP}: function-like macros bindgen cannot evaluate.
const RSS_L3_L4: u64 = (1 << 2) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 10) | (1 << 11);
/// RTE_ETH_RSS_NONFRAG_IPV4_TCP.
const RSS_IPV4_TCP: u64 = 1 << 4;
/// RTE_ETH_RSS_L3_SRC_ONLY | RTE_ETH_RSS_L4_SRC_ONLY: hash the source
/// address and port alone.
const RSS_SOURCE_ONLY: u64 = (1 << 63) | (1 << 61);

/// The ports a [`Port`] holds: a port id is configured and started by one
/// `Port` at a time, whose queue handles are then the only ones.
static STARTED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Claims port `id` for one `Port::start`; released when its `PortInner`
/// goes (or the start fails).
struct Claim(u16);

impl Claim {
    fn take(id: u16) -> Result<Claim> {
        let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
        if !started.insert(id) {
            return Err(DpdkError::Invalid(format!(
                "DPDK port {id} is already started (each port is started once, and its \
                 queues handed out once)"
            )));
        }
        Ok(Claim(id))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        STARTED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

pub(crate) struct PortInner {
    id: u16,
    // Receive queues allocate from it; it must outlive the port.
    _pool: Arc<Mempool>,
    // Dropped after the port is closed (fields drop after `drop`).
    _claim: Claim,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: every queue handle holds an Arc to us, so no thread is
        // polling the port any more.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}

/// A started ethdev port. Its queues are handed out once, as [`RxQueue`] and
/// [`TxQueue`] values, so that each queue is polled by exactly one thread.
pub struct Port {
    inner: Arc<PortInner>,
    mac: MacAddr,
    rxq: Vec<RxQueue>,
    txq: Vec<TxQueue>,
    rss: RssMode,
}

impl Port {
    /// The port id DPDK gave the device called `name` (e.g. the vdev name
    /// `net_af_packet0`, or a PCI address).
    pub fn id_by_name(_eal: &Eal, name: &str) -> Result<u16> {
        let c = CString::new(name).map_err(|_| DpdkError::Invalid("port name".into()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        check("rte_eth_dev_get_port_by_name", rc)
            .map_err(|_| DpdkError::Invalid(format!("no DPDK port named {name:?} was probed")))?;
        Ok(id)
    }

    /// Configures and starts port `id`. A port is started once: a second
    /// `start` of the same id while the first `Port` (or any of its queues)
    /// lives is refused, so two threads never poll one queue.
    pub fn start(_eal: &Eal, id: u16, cfg: &PortConfig, pool: Arc<Mempool>) -> Result<Port> {
        let claim = Claim::take(id)?;
        // SAFETY: rte_eth_conf is a plain C struct for which all-zero means
        // "defaults" (no offloads, no RSS).
        let mut conf: dpdk_sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        let mut info: dpdk_sys::rte_eth_dev_info = Default::default();
        // SAFETY: valid port id and out-pointer.
        check("rte_eth_dev_info_get", unsafe {
            dpdk_sys::rte_eth_dev_info_get(id, &mut info)
        })?;
        // Spread flows over queues on NICs that can, on the client
        // endpoint where asked and possible; virtual devices that spread by
        // themselves (af_packet fanout) ignore this.
        let (mut rss, hf) = plan_rss(
            cfg.rx_queues,
            cfg.rss_key.as_ref(),
            info.flow_type_rss_offloads,
            info.reta_size,
            info.hash_key_size,
        );
        // Ours, padded with zeros to the port's length (plan_rss asks for
        // a key only where that is at least ours); read by
        // rte_eth_dev_configure, which copies it.
        let mut key = vec![0u8; usize::from(info.hash_key_size).max(RSS_KEY_LEN)];
        if hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
            if rss == RssMode::ClientEndpoint {
                if let Some(k) = &cfg.rss_key {
                    key[..RSS_KEY_LEN].copy_from_slice(k);
                }
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        }
        // SAFETY: valid port id and configuration.
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf)
        })?;
        let mut rx_desc = cfg.rx_desc;
        let mut tx_desc = cfg.tx_desc;
        // SAFETY: valid port id and in/out pointers.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc)
        })?;
        // SAFETY: valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..cfg.rx_queues {
            // SAFETY: queue index within what was configured; the pool
            // outlives the port (PortInner holds it).
            check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: queue index within what was configured.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket, std::ptr::null())
            })?;
        }
        // SAFETY: configured port.
        check("rte_eth_dev_start", unsafe {
            dpdk_sys::rte_eth_dev_start(id)
        })?;
        if rss == RssMode::ClientEndpoint {
            if let Err(e) = program_reta(id, info.reta_size, cfg.rx_queues) {
                // Keyed on the source still, but through the port's own
                // table: correct, with packets handed over.
                log::warn!("port {id}: its redirection table refused rvsd's ({e})");
                rss = RssMode::PortsOwn(hf);
            }
        }
        if cfg.promiscuous {
            // SAFETY: started port. Not every PMD supports it; ignore errors.
            unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
        }
        let mut mac = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port and out-pointer.
        check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(id, &mut mac)
        })?;
        let inner = Arc::new(PortInner {
            id,
            _pool: pool,
            _claim: claim,
        });
        let rxq = (0..cfg.rx_queues)
            .map(|q| RxQueue {
                port: inner.clone(),
                queue: q,
            })
            .collect();
        let txq = (0..cfg.tx_queues)
            .map(|q| TxQueue {
                port: inner.clone(),
                queue: q,
            })
            .collect();
        Ok(Port {
            inner,
            mac: MacAddr(mac.addr_bytes),
            rxq,
            txq,
            rss,
        })
    }

    /// How the port spreads received packets over its queues.
    pub fn rss(&self) -> RssMode {
        self.rss
    }

    pub fn id(&self) -> u16 {
        self.inner.id
    }

    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Hands out the receive queues; each can be taken once.
    pub fn take_rx_queues(&mut self) -> Vec<RxQueue> {
        std::mem::take(&mut self.rxq)
    }

    /// Hands out the transmit queues; each can be taken once.
    pub fn take_tx_queues(&mut self) -> Vec<TxQueue> {
        std::mem::take(&mut self.txq)
    }

    pub fn stats(&self) -> PortStats {
        stats_of(&crate::eal::THE_EAL, self.inner.id)
    }
}

/// Fills the redirection table of port `id` (`reta_size` entries) with
/// [`reta_queue`]'s pattern.
fn program_reta(id: u16, reta_size: u16, queues: u16) -> Result<()> {
    let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    let mut conf: Vec<dpdk_sys::rte_eth_rss_reta_entry64> = (0..usize::from(reta_size)
        .div_ceil(group))
        .map(|_| Default::default())
        .collect();
    for i in 0..usize::from(reta_size) {
        let e = &mut conf[i / group];
        e.mask |= 1 << (i % group);
        e.reta[i % group] = reta_queue(i as u32, usize::from(queues)) as u16;
    }
    // SAFETY: `conf` holds reta_size / 64 (rounded up) groups, as the call
    // reads; valid port id.
    check("rte_eth_dev_rss_reta_update", unsafe {
        dpdk_sys::rte_eth_dev_rss_reta_update(id, conf.as_mut_ptr(), reta_size)
    })
    .map(drop)
}

/// Counters of port `id`; zeros if the query fails.
pub fn stats_of(_eal: &Eal, id: u16) -> PortStats {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: out-pointer to a plain struct; an invalid id returns an error.
    let rc = unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) };
    if rc != 0 {
        return PortStats::default();
    }
    PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}

/// One receive queue of a port. Not Clone: DPDK requires one poller per queue.
pub struct RxQueue {
    pub(crate) port: Arc<PortInner>,
    queue: u16,
}

impl RxQueue {
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives up to `MAX_BURST` packets, appending them to `out`; returns
    /// how many arrived.
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>) -> usize {
        out.reserve(MAX_BURST);
        let spare = out.spare_capacity_mut();
        let want = spare.len().min(MAX_BURST) as u16;
        // SAFETY: Mbuf is repr(transparent) over a non-null rte_mbuf pointer,
        // and DPDK writes exactly `n` valid, owned mbuf pointers to the spare
        // capacity, which we then count into the Vec.
        unsafe {
            let n = dpdk_sys::rte_eth_rx_burst(
                self.port.id,
                self.queue,
                spare.as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf,
                want,
            ) as usize;
            out.set_len(out.len() + n);
            n
        }
    }
}

/// One transmit queue of a port. Not Clone: one sender per queue.
pub struct TxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl TxQueue {
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Sends every packet in `pkts` (emptying it); returns how many the NIC
    /// took. Packets it refused are freed.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let total = pkts.len();
        let mut sent = 0usize;
        while sent < total {
            let chunk = (total - sent).min(u16::MAX as usize) as u16;
            // SAFETY: the Vec holds `total` owned mbuf pointers; DPDK takes
            // ownership of the first `n` it accepts.
            let n = unsafe {
                dpdk_sys::rte_eth_tx_burst(
                    self.port.id,
                    self.queue,
                    pkts.as_mut_ptr().add(sent) as *mut *mut dpdk_sys::rte_mbuf,
                    chunk,
                )
            } as usize;
            if n == 0 {
                break;
            }
            sent += n;
        }
        // The first `sent` now belong to DPDK: forget them, free the rest.
        for m in pkts.drain(..sent) {
            let _ = m.into_raw();
        }
        pkts.clear();
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; RSS_KEY_LEN] = [7; RSS_KEY_LEN];

    #[test]
    fn rss_on_the_client_endpoint_where_the_port_can() {
        let offloads = RSS_L3_L4 | RSS_SOURCE_ONLY | (1 << 60) | (1 << 62);
        // 512 entries and a key longer than ours (52 bytes, as some NICs').
        assert_eq!(
            plan_rss(2, Some(&KEY), offloads, 512, 52),
            (RssMode::ClientEndpoint, RSS_L3_L4 | RSS_SOURCE_ONLY)
        );
        // A 64-entry table serves 2 or 4 queues, not 3.
        assert_eq!(
            plan_rss(4, Some(&KEY), offloads, 64, 40).0,
            RssMode::ClientEndpoint
        );
        assert_eq!(
            plan_rss(3, Some(&KEY), offloads, 64, 40).0,
            RssMode::PortsOwn(RSS_L3_L4)
        );
        assert_eq!(
            plan_rss(3, Some(&KEY), offloads, 128, 40).0,
            RssMode::ClientEndpoint
        );
        // A key shorter than ours, or of a length the port does not say.
        for key_size in [16, 0] {
            assert_eq!(
                plan_rss(2, Some(&KEY), offloads, 128, key_size).0,
                RssMode::PortsOwn(RSS_L3_L4)
            );
        }
    }

    #[test]
    fn rss_falls_back_to_the_ports_own_or_none() {
        // The source-only bits missing (e.g. Intel's 82599): the port's own.
        assert_eq!(
            plan_rss(2, Some(&KEY), RSS_L3_L4 | (1 << 7), 128, 40),
            (RssMode::PortsOwn(RSS_L3_L4), RSS_L3_L4)
        );
        // No key asked for.
        assert_eq!(
            plan_rss(2, None, RSS_L3_L4 | RSS_SOURCE_ONLY, 128, 40).0,
            RssMode::PortsOwn(RSS_L3_L4)
        );
        // af_packet, pcap, ring: no RSS at all.
        assert_eq!(plan_rss(2, Some(&KEY), 0, 0, 0), (RssMode::Unavailable, 0));
        assert_eq!(
            plan_rss(1, Some(&KEY), RSS_L3_L4 | RSS_SOURCE_ONLY, 128, 40),
            (RssMode::NotAsked, 0)
        );
    }

    #[test]
    fn the_programmed_table_gives_reta_queue_of_the_hash() {
        // What the NIC does with a table of `size` entries filled as
        // program_reta fills it: the hash's low bits pick the entry.
        for (size, queues) in [(128u32, 3usize), (512, 3), (512, 5), (64, 4), (64, 2)] {
            for hash in (0..100_000u32).map(|i| i.wrapping_mul(0x9e37_79b9)) {
                let entry = hash % size;
                assert_eq!(
                    reta_queue(entry, queues),
                    reta_queue(hash, queues),
                    "table {size}, {queues} queues, hash {hash:#x}"
                );
            }
        }
    }
}
