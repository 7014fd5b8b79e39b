//! The IPVS TCP state machine (`ip_vs_proto_tcp.c`), as data: three tables
//! (INPUT, OUTPUT, INPUT_ONLY) of next states, indexed by the event the
//! packet's flags give (RST > SYN > FIN > ACK) and the current state.
//!
//! Why this file is long (about 560 lines): the kernel's three tables
//! written out as data, state by state (about 380 lines), and their tests
//! (about 180).

use serde::{Deserialize, Serialize};

/// IPVS TCP connection states, in the kernel's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

use TcpState::*;

impl TcpState {
    /// Every state, in the kernel's order (`ALL[s as usize] == s`).
    pub const ALL: [TcpState; 11] = [
        None,
        Established,
        SynSent,
        SynRecv,
        FinWait,
        TimeWait,
        Close,
        CloseWait,
        LastAck,
        Listen,
        SynAck,
    ];

    /// Whether a connection in this state counts as ActiveConn: the
    /// handshake states and ESTABLISHED (the kernel's
    /// `tcp_state_active_table`, since 4.12); closing and closed states count
    /// as InActConn.
    pub fn is_active(self) -> bool {
        matches!(self, Established | SynSent | SynRecv | SynAck)
    }

    /// As `ipvsadm -Lc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            None => "NONE",
            Established => "ESTABLISHED",
            SynSent => "SYN_SENT",
            SynRecv => "SYN_RECV",
            FinWait => "FIN_WAIT",
            TimeWait => "TIME_WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE_WAIT",
            LastAck => "LAST_ACK",
            Listen => "LISTEN",
            SynAck => "SYNACK",
        }
    }
}

/// Which way the packet goes, and which table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server, when replies also pass the director (NAT).
    Input,
    /// Real server to client (NAT only).
    Output,
    /// Client to real server when the director never sees replies (DR/TUN).
    InputOnly,
}

/// The event a segment's flags give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Syn,
    Fin,
    Ack,
    Rst,
}

impl Event {
    /// RST wins over SYN, SYN over FIN, FIN over ACK; None means no flag of
    /// those, which sends the connection to CLOSE.
    pub fn from_flags(syn: bool, fin: bool, ack: bool, rst: bool) -> Option<Event> {
        if rst {
            Some(Event::Rst)
        } else if syn {
            Some(Event::Syn)
        } else if fin {
            Some(Event::Fin)
        } else if ack {
            Some(Event::Ack)
        } else {
            Option::None
        }
    }
}

// Rows: syn, fin, ack, rst. Columns: the current state, NO ES SS SR FW TW CL CW LA LI SA.
type Table = [[TcpState; 11]; 4];

const INPUT: Table = [
    [
        SynRecv,
        Established,
        Established,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
    ],
    [
        Close, CloseWait, SynSent, TimeWait, TimeWait, TimeWait, Close, CloseWait, LastAck, Listen,
        TimeWait,
    ],
    [
        Established,
        Established,
        SynSent,
        Established,
        FinWait,
        TimeWait,
        Close,
        CloseWait,
        Close,
        Listen,
        Established,
    ],
    [
        Close, Close, Close, SynRecv, Close, Close, Close, Close, LastAck, Listen, SynRecv,
    ],
];

const OUTPUT: Table = [
    [
        SynSent,
        Established,
        SynSent,
        SynRecv,
        SynSent,
        SynSent,
        SynSent,
        SynSent,
        SynSent,
        Listen,
        SynRecv,
    ],
    [
        TimeWait, FinWait, SynSent, TimeWait, FinWait, TimeWait, Close, TimeWait, LastAck, Listen,
        TimeWait,
    ],
    [
        Established,
        Established,
        SynSent,
        Established,
        FinWait,
        TimeWait,
        Close,
        CloseWait,
        LastAck,
        Established,
        Established,
    ],
    [
        Close, Close, SynSent, Close, Close, TimeWait, Close, Close, Close, Close, Close,
    ],
];

const INPUT_ONLY: Table = [
    [
        SynRecv,
        Established,
        Established,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
    ],
    [
        Close, FinWait, SynSent, TimeWait, FinWait, TimeWait, Close, CloseWait, LastAck, Listen,
        TimeWait,
    ],
    [
        Established,
        Established,
        SynSent,
        Established,
        FinWait,
        TimeWait,
        Close,
        CloseWait,
        Close,
        Listen,
        Established,
    ],
    [
        Close, Close, Close, SynRecv, Close, Close, Close, Close, LastAck, Listen, Close,
    ],
];

// The tables `secure_tcp` switches to while its defence is on (the
// kernel's `tcp_states_dos`). Through the director (NAT), a connection is
// ESTABLISHED only once the real server's SYN-ACK came back (an ACK from
// SYN_RECV stays there); for DR/TUN, the first SYN leads to SYNACK. The
// NONE column takes an ACK to ESTABLISHED, as in the tables above.
const INPUT_DOS: Table = [
    [
        SynRecv,
        Established,
        Established,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynRecv,
        SynAck,
    ],
    [
        Close, CloseWait, SynSent, TimeWait, TimeWait, TimeWait, Close, CloseWait, LastAck, Listen,
        SynAck,
    ],
    [
        Established,
        Established,
        SynSent,
        SynRecv,
        FinWait,
        TimeWait,
        Close,
        CloseWait,
        Close,
        Listen,
        SynAck,
    ],
    [
        Close, Close, Close, SynRecv, Close, Close, Close, Close, LastAck, Listen, Close,
    ],
];

const OUTPUT_DOS: Table = [
    [
        SynSent,
        Established,
        SynSent,
        SynAck,
        SynSent,
        SynSent,
        SynSent,
        SynSent,
        SynSent,
        Listen,
        SynAck,
    ],
    OUTPUT[1],
    OUTPUT[2],
    OUTPUT[3],
];

const INPUT_ONLY_DOS: Table = [
    [
        SynAck,
        Established,
        Established,
        SynRecv,
        SynAck,
        SynAck,
        SynAck,
        SynAck,
        SynAck,
        SynAck,
        SynAck,
    ],
    INPUT_ONLY[1],
    INPUT_ONLY[2],
    INPUT_ONLY[3],
];

/// Which set of tables a connection table steps its connections with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateTables {
    /// The kernel's `tcp_states`.
    #[default]
    Normal,
    /// The kernel's `tcp_states_dos`, while `secure_tcp` is on.
    Secure,
}

/// The next state after a segment with `event` (None: no SYN/FIN/ACK/RST).
pub fn next_state(dir: Direction, state: TcpState, event: Option<Event>) -> TcpState {
    next_state_in(StateTables::Normal, dir, state, event)
}

/// [`next_state`] in the given set of tables.
pub fn next_state_in(
    tables: StateTables,
    dir: Direction,
    state: TcpState,
    event: Option<Event>,
) -> TcpState {
    let Some(ev) = event else {
        return Close;
    };
    let table = match (tables, dir) {
        (StateTables::Normal, Direction::Input) => &INPUT,
        (StateTables::Normal, Direction::Output) => &OUTPUT,
        (StateTables::Normal, Direction::InputOnly) => &INPUT_ONLY,
        (StateTables::Secure, Direction::Input) => &INPUT_DOS,
        (StateTables::Secure, Direction::Output) => &OUTPUT_DOS,
        (StateTables::Secure, Direction::InputOnly) => &INPUT_ONLY_DOS,
    };
    let row = match ev {
        Event::Syn => 0,
        Event::Fin => 1,
        Event::Ack => 2,
        Event::Rst => 3,
    };
    table[row][state as usize]
}

/// Connection timeouts in seconds. `--set tcp tcpfin udp` changes the
/// ESTABLISHED, FIN_WAIT and UDP values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
    /// SYN_RECV, which decides how long half-open connections live.
    pub syn_recv: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
            syn_recv: 60,
        }
    }
}

impl Timeouts {
    /// Seconds a TCP connection in `state` lives without packets.
    pub fn tcp_timeout(&self, state: TcpState) -> u32 {
        match state {
            None => 2,
            Established => self.tcp,
            SynSent => 120,
            SynRecv => self.syn_recv,
            FinWait => self.tcp_fin,
            TimeWait => 120,
            Close => 10,
            CloseWait => 60,
            LastAck => 30,
            Listen => 120,
            SynAck => 120,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's tables as text, checked cell by cell against ours.
    const SPEC: &str = "
INPUT       syn: SR ES ES SR SR SR SR SR SR SR SR
            fin: CL CW SS TW TW TW CL CW LA LI TW
            ack: ES ES SS ES FW TW CL CW CL LI ES
            rst: CL CL CL SR CL CL CL CL LA LI SR
OUTPUT      syn: SS ES SS SR SS SS SS SS SS LI SR
            fin: TW FW SS TW FW TW CL TW LA LI TW
            ack: ES ES SS ES FW TW CL CW LA ES ES
            rst: CL CL SS CL CL TW CL CL CL CL CL
INPUT_ONLY  syn: SR ES ES SR SR SR SR SR SR SR SR
            fin: CL FW SS TW FW TW CL CW LA LI TW
            ack: ES ES SS ES FW TW CL CW CL LI ES
            rst: CL CL CL SR CL CL CL CL LA LI CL";

    fn abbrev(s: &str) -> TcpState {
        match s {
            "NO" => None,
            "ES" => Established,
            "SS" => SynSent,
            "SR" => SynRecv,
            "FW" => FinWait,
            "TW" => TimeWait,
            "CL" => Close,
            "CW" => CloseWait,
            "LA" => LastAck,
            "LI" => Listen,
            "SA" => SynAck,
            _ => panic!("{s}"),
        }
    }

    #[test]
    fn tables_match_spec_cell_by_cell() {
        let mut dir = Direction::Input;
        let mut cells = 0;
        for line in SPEC.lines().filter(|l| !l.trim().is_empty()) {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            if !words[0].ends_with(':') {
                dir = match words.remove(0) {
                    "INPUT" => Direction::Input,
                    "OUTPUT" => Direction::Output,
                    _ => Direction::InputOnly,
                };
            }
            let ev = match words.remove(0) {
                "syn:" => Event::Syn,
                "fin:" => Event::Fin,
                "ack:" => Event::Ack,
                _ => Event::Rst,
            };
            for (state, want) in TcpState::ALL.iter().zip(words) {
                assert_eq!(
                    next_state(dir, *state, Some(ev)),
                    abbrev(want),
                    "{dir:?} {ev:?} from {state:?}"
                );
                cells += 1;
            }
        }
        assert_eq!(cells, 3 * 4 * 11);
    }

    /// `secure_tcp`'s tables (the kernel's `tcp_states_dos`), cell by cell.
    const SPEC_DOS: &str = "
INPUT       syn: SR ES ES SR SR SR SR SR SR SR SA
            fin: CL CW SS TW TW TW CL CW LA LI SA
            ack: ES ES SS SR FW TW CL CW CL LI SA
            rst: CL CL CL SR CL CL CL CL LA LI CL
OUTPUT      syn: SS ES SS SA SS SS SS SS SS LI SA
            fin: TW FW SS TW FW TW CL TW LA LI TW
            ack: ES ES SS ES FW TW CL CW LA ES ES
            rst: CL CL SS CL CL TW CL CL CL CL CL
INPUT_ONLY  syn: SA ES ES SR SA SA SA SA SA SA SA
            fin: CL FW SS TW FW TW CL CW LA LI TW
            ack: ES ES SS ES FW TW CL CW CL LI ES
            rst: CL CL CL SR CL CL CL CL LA LI CL";

    fn check_spec(tables: StateTables, spec: &str) {
        let mut dir = Direction::Input;
        let mut cells = 0;
        for line in spec.lines().filter(|l| !l.trim().is_empty()) {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            if !words[0].ends_with(':') {
                dir = match words.remove(0) {
                    "INPUT" => Direction::Input,
                    "OUTPUT" => Direction::Output,
                    _ => Direction::InputOnly,
                };
            }
            let ev = match words.remove(0) {
                "syn:" => Event::Syn,
                "fin:" => Event::Fin,
                "ack:" => Event::Ack,
                _ => Event::Rst,
            };
            for (state, want) in TcpState::ALL.iter().zip(words) {
                assert_eq!(
                    next_state_in(tables, dir, *state, Some(ev)),
                    abbrev(want),
                    "{tables:?} {dir:?} {ev:?} from {state:?}"
                );
                cells += 1;
            }
        }
        assert_eq!(cells, 3 * 4 * 11);
    }

    #[test]
    fn secure_tables_match_spec_cell_by_cell() {
        check_spec(StateTables::Secure, SPEC_DOS);
        check_spec(StateTables::Normal, SPEC);
    }

    #[test]
    fn secure_nat_waits_for_the_servers_syn_ack() {
        let t = StateTables::Secure;
        let s = next_state_in(t, Direction::Input, None, Some(Event::Syn));
        assert_eq!(s, SynRecv);
        // A client's ACK alone (a spoofed handshake) does not establish.
        assert_eq!(
            next_state_in(t, Direction::Input, s, Some(Event::Ack)),
            SynRecv
        );
        let s = next_state_in(t, Direction::Output, s, Some(Event::Syn));
        assert_eq!(s, SynAck);
        assert_eq!(
            next_state_in(t, Direction::Input, s, Some(Event::Ack)),
            SynAck
        );
        assert_eq!(
            next_state_in(t, Direction::Output, s, Some(Event::Ack)),
            Established
        );
    }

    #[test]
    fn all_is_indexed_by_state() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    #[test]
    fn flag_priority() {
        assert_eq!(Event::from_flags(true, true, true, true), Some(Event::Rst));
        assert_eq!(Event::from_flags(true, true, true, false), Some(Event::Syn));
        assert_eq!(
            Event::from_flags(false, true, true, false),
            Some(Event::Fin)
        );
        assert_eq!(
            Event::from_flags(false, false, true, false),
            Some(Event::Ack)
        );
        assert_eq!(Event::from_flags(false, false, false, false), Option::None);
        assert_eq!(
            next_state(Direction::Input, Established, Option::None),
            Close
        );
    }

    #[test]
    fn dr_handshake_and_close() {
        let d = Direction::InputOnly;
        let s = next_state(d, None, Some(Event::Syn));
        assert_eq!(s, SynRecv);
        let s = next_state(d, s, Some(Event::Ack));
        assert_eq!(s, Established);
        let s = next_state(d, s, Some(Event::Fin));
        assert_eq!(s, FinWait);
        assert_eq!(Timeouts::default().tcp_timeout(s), 120);
    }
}
