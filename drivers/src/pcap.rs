//! pcap files in and out: a test input device that replays a capture, and a tx device that
//! records what the engine sends. The files open in tcpdump and tshark.

use rvpp_dataplane::buffer::Buffers;
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_dataplane::graph::DeviceNodes;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The graph nodes of pcap file devices.
pub const INPUT_NODE: &str = "pcap-input";
pub const TX_NODE: &str = "pcap-tx";
pub const NODES: DeviceNodes = DeviceNodes::new(INPUT_NODE, TX_NODE);

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// Largest record we accept; anything bigger is a corrupt file.
const MAX_RECORD: u32 = 256 * 1024;

/// A packet read from a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub ts_sec: u32,
    pub ts_frac: u32,
    pub data: Vec<u8>,
}

/// Parse a whole pcap file: (link type, records).
pub fn parse(bytes: &[u8]) -> io::Result<(u32, Vec<Record>)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    if bytes.len() < 24 {
        return Err(bad("pcap: file shorter than its header"));
    }
    let magic_le = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let magic_be = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let le = match (magic_le, magic_be) {
        (MAGIC_USEC | MAGIC_NSEC, _) => true,
        (_, MAGIC_USEC | MAGIC_NSEC) => false,
        _ => return Err(bad("pcap: bad magic")),
    };
    let rd = |o: usize| -> u32 {
        let a: [u8; 4] = bytes[o..o + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = rd(20);
    let mut out = Vec::new();
    let mut off = 24;
    while off < bytes.len() {
        if off + 16 > bytes.len() {
            return Err(bad("pcap: truncated record header"));
        }
        let (ts_sec, ts_frac, incl) = (rd(off), rd(off + 4), rd(off + 8));
        if incl > MAX_RECORD {
            return Err(bad("pcap: record larger than 256 KiB"));
        }
        let start = off + 16;
        let end = start + incl as usize;
        if end > bytes.len() {
            return Err(bad("pcap: truncated record"));
        }
        out.push(Record {
            ts_sec,
            ts_frac,
            data: bytes[start..end].to_vec(),
        });
        off = end;
    }
    Ok((linktype, out))
}

/// Read a pcap file.
pub fn read_file(path: &Path) -> io::Result<(u32, Vec<Record>)> {
    let mut v = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut v)?;
    parse(&v)
}

/// Serialize records as a pcap file (microsecond timestamps, little-endian).
pub fn write_file(path: &Path, linktype: u32, records: &[Record]) -> io::Result<()> {
    let mut w = PcapWriter::new(linktype);
    for r in records {
        w.push(r.ts_sec, r.ts_frac, &r.data);
    }
    w.save(path)
}

/// Accumulates records in memory; `save` writes the file.
pub struct PcapWriter {
    bytes: Vec<u8>,
    pub count: usize,
}

impl PcapWriter {
    pub fn new(linktype: u32) -> Self {
        let mut bytes = Vec::with_capacity(1 << 16);
        bytes.extend_from_slice(&MAGIC_USEC.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&65535u32.to_le_bytes());
        bytes.extend_from_slice(&linktype.to_le_bytes());
        Self { bytes, count: 0 }
    }
    pub fn push(&mut self, ts_sec: u32, ts_usec: u32, data: &[u8]) {
        self.bytes.extend_from_slice(&ts_sec.to_le_bytes());
        self.bytes.extend_from_slice(&ts_usec.to_le_bytes());
        self.bytes
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(data);
        self.count += 1;
    }
    pub fn push_now(&mut self, data: &[u8]) {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.push(t.as_secs() as u32, t.subsec_micros(), data);
    }
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("pcap.tmp");
        std::fs::File::create(&tmp)?.write_all(&self.bytes)?;
        std::fs::rename(tmp, path)
    }
}

/// An rx queue that replays a capture once.
pub struct PcapRx {
    sw_if_index: u32,
    linktype: u32,
    records: Vec<Record>,
    next: usize,
    /// Records that did not fit in a buffer chain or found the pool empty.
    pub dropped: u64,
}

impl PcapRx {
    pub fn new(sw_if_index: u32, linktype: u32, records: Vec<Record>) -> Self {
        Self {
            sw_if_index,
            linktype,
            records,
            next: 0,
            dropped: 0,
        }
    }
    pub fn open(sw_if_index: u32, path: &Path) -> io::Result<Self> {
        let (lt, recs) = read_file(path)?;
        if lt != LINKTYPE_ETHERNET && lt != LINKTYPE_RAW {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("pcap: link type {lt} not supported"),
            ));
        }
        Ok(Self::new(sw_if_index, lt, recs))
    }
    pub fn remaining(&self) -> usize {
        self.records.len() - self.next
    }
}

impl RxQueue for PcapRx {
    fn input_node(&self) -> &'static str {
        INPUT_NODE
    }
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let mut n = 0;
        while n < out.len() && self.next < self.records.len() {
            let rec = &self.records[self.next];
            self.next += 1;
            let Some(bi) = bufs.alloc_from_bytes(&rec.data) else {
                self.dropped += 1;
                continue;
            };
            bufs.meta(bi).rx_sw_if_index = self.sw_if_index;
            nexts[n] = if self.linktype == LINKTYPE_ETHERNET {
                rx_next::ETHERNET
            } else {
                match rec.data.first().map(|b| b >> 4) {
                    Some(4) => rx_next::IP4,
                    Some(6) => rx_next::IP6,
                    _ => rx_next::DROP,
                }
            };
            out[n] = bi;
            n += 1;
        }
        n
    }
}

/// A tx queue that records every packet and writes the capture on each flush.
pub struct PcapTx {
    path: PathBuf,
    writer: PcapWriter,
    dirty: bool,
    scratch: Vec<u8>,
}

impl PcapTx {
    pub fn new(path: PathBuf, linktype: u32) -> Self {
        Self {
            path,
            writer: PcapWriter::new(linktype),
            dirty: true,
            scratch: vec![0; 65536],
        }
    }
}

impl TxQueue for PcapTx {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        for &bi in pkts {
            let n = bufs.copy_chain(bi, &mut self.scratch);
            self.writer
                .push(0, self.writer.count as u32, &self.scratch[..n]);
        }
        bufs.free(pkts);
        self.dirty |= !pkts.is_empty();
        pkts.len()
    }
    fn flush(&mut self, _bufs: &mut Buffers) {
        if self.dirty {
            if let Err(e) = self.writer.save(&self.path) {
                log::warn!("pcap-tx: cannot write {}: {e}", self.path.display());
            }
            self.dirty = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_round_trips() {
        let recs = vec![
            Record {
                ts_sec: 1,
                ts_frac: 2,
                data: vec![1, 2, 3],
            },
            Record {
                ts_sec: 3,
                ts_frac: 4,
                data: vec![0; 1500],
            },
        ];
        let dir = std::env::temp_dir().join(format!("rvpp-pcap-{}", std::process::id()));
        write_file(&dir, LINKTYPE_ETHERNET, &recs).unwrap();
        let (lt, got) = read_file(&dir).unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!(lt, LINKTYPE_ETHERNET);
        assert_eq!(got, recs);
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        assert!(parse(&[0u8; 10]).is_err());
        assert!(parse(&[0u8; 24]).is_err());
        let mut w = PcapWriter::new(1);
        w.push(0, 0, &[9; 100]);
        let full = w.bytes.clone();
        for cut in 25..full.len() {
            assert!(parse(&full[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = full.clone();
        huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge).is_err());
    }
}
