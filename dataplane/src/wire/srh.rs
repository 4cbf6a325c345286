//! The IPv6 Segment Routing Header (RFC 8754): routing header type 4. The fixed 8 bytes are a
//! [`fixed_header!`] view; [`Srh::parse`] checks the whole header once (its length against the
//! buffer, the segment list against the length) so that reading a segment afterwards is a
//! slice of a checked range.

use super::fixed::fixed_header;

/// The SRH's routing type.
pub const ROUTING_TYPE_SRH: u8 = 4;
/// The fixed part: next header, length, type, segments left, last entry, flags, tag.
pub const SRH_FIXED: usize = 8;
/// One segment (an IPv6 address).
pub const SEGMENT: usize = 16;
/// Offset of Segments Left in the SRH (for ICMPv6 parameter problem pointers).
pub const SEGMENTS_LEFT_OFFSET: usize = 3;
/// The most segments rvpp puts in or accepts in one SRH (VPP's API carries 16).
pub const MAX_SEGMENTS: usize = 16;
/// The longest SRH rvpp writes: the fixed part and 16 segments, no TLVs.
pub const SRH_MAX: usize = SRH_FIXED + MAX_SEGMENTS * SEGMENT;

fixed_header! {
    /// The fixed 8 bytes of a routing header / SRH.
    SrhFixed, SrhFixedMut, SRH_FIXED;
    next_header, set_next_header: u8 @ 0;
    /// Length in 8-octet units, not counting the first 8 octets.
    hdr_ext_len, set_hdr_ext_len: u8 @ 1;
    routing_type, set_routing_type: u8 @ 2;
    segments_left, set_segments_left: u8 @ 3;
    last_entry, set_last_entry: u8 @ 4;
    flags, set_flags: u8 @ 5;
    tag, set_tag: u16 @ 6;
}

/// Why bytes are not a usable SRH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrhError {
    /// Shorter than 8 bytes, or the header length runs past the packet.
    Truncated,
    /// A routing header of another type.
    NotSrh,
    /// Header length 0: no room for a segment.
    NoSegments,
    /// Last Entry names a segment beyond the header length (RFC 8754 4.3.1.1 S09: ICMPv6
    /// parameter problem).
    LastEntry,
    /// Segments Left > Last Entry + 1 (RFC 8754 S10: ICMPv6 parameter problem).
    SegmentsLeft,
}

/// A checked SRH: `bytes` is exactly the header (8 + 8 * hdr_ext_len bytes) and holds
/// segments 0..=last_entry.
#[derive(Clone, Copy)]
pub struct Srh<'a> {
    fixed: SrhFixed<'a>,
    bytes: &'a [u8],
}

impl<'a> Srh<'a> {
    /// The SRH at the start of `buf`, checked as RFC 8754 4.3.1.1 asks before it is used.
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Self, SrhError> {
        let fixed = SrhFixed::new(buf).ok_or(SrhError::Truncated)?;
        if fixed.routing_type() != ROUTING_TYPE_SRH {
            return Err(SrhError::NotSrh);
        }
        let units = fixed.hdr_ext_len() as usize;
        if units == 0 {
            return Err(SrhError::NoSegments);
        }
        let len = SRH_FIXED + 8 * units;
        let bytes = buf.get(..len).ok_or(SrhError::Truncated)?;
        // max_last_entry = hdr_ext_len / 2 - 1 (units is at least 1 here).
        if (fixed.last_entry() as usize + 1) * 2 > units {
            return Err(SrhError::LastEntry);
        }
        if fixed.segments_left() as usize > fixed.last_entry() as usize + 1 {
            return Err(SrhError::SegmentsLeft);
        }
        Ok(Self { fixed, bytes })
    }

    /// The header's length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        false
    }
    #[inline(always)]
    pub fn fixed(&self) -> SrhFixed<'a> {
        self.fixed
    }
    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.fixed.next_header()
    }
    #[inline(always)]
    pub fn segments_left(&self) -> u8 {
        self.fixed.segments_left()
    }
    #[inline(always)]
    pub fn last_entry(&self) -> u8 {
        self.fixed.last_entry()
    }
    /// Segment `i` (0 is the last one visited); None past Last Entry.
    #[inline(always)]
    pub fn segment(&self, i: u8) -> Option<u128> {
        if i > self.fixed.last_entry() {
            return None;
        }
        let at = SRH_FIXED + SEGMENT * i as usize;
        self.bytes
            .get(at..at + SEGMENT)
            .and_then(|s| s.first_chunk::<SEGMENT>())
            .map(|s| u128::from_be_bytes(*s))
    }
}

/// Write an SRH with no TLVs into the start of `buf`: `path` in the order the packet visits
/// it (path[0] first), stored reversed as RFC 8754 lists them, Segments Left = `segments_left`.
/// Returns its length, or None if `buf` is too short or `path` is empty or too long.
pub fn emit(buf: &mut [u8], next_header: u8, path: &[u128], segments_left: u8) -> Option<usize> {
    if path.is_empty() || path.len() > MAX_SEGMENTS || segments_left as usize > path.len() {
        return None;
    }
    let len = SRH_FIXED + SEGMENT * path.len();
    let out = buf.get_mut(..len)?;
    let mut f = SrhFixedMut::new(out)?;
    f.0.fill(0);
    f.set_next_header(next_header);
    f.set_hdr_ext_len((2 * path.len()) as u8);
    f.set_routing_type(ROUTING_TYPE_SRH);
    f.set_segments_left(segments_left);
    f.set_last_entry((path.len() - 1) as u8);
    for (i, sid) in path.iter().rev().enumerate() {
        let at = SRH_FIXED + SEGMENT * i;
        out[at..at + SEGMENT].copy_from_slice(&sid.to_be_bytes());
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_000a;
    const B: u128 = 0xfd00_0000_0000_0000_0000_0000_0000_000b;

    #[test]
    fn emit_then_parse_round_trips_in_rfc_order() {
        let mut b = [0u8; 64];
        let n = emit(&mut b, 4, &[A, B], 1).unwrap();
        assert_eq!(n, 40);
        assert_eq!(&b[..8], &[4, 4, 4, 1, 1, 0, 0, 0]);
        // Segment List[0] is the last segment of the path.
        assert_eq!(&b[8..24], &B.to_be_bytes());
        assert_eq!(&b[24..40], &A.to_be_bytes());
        let s = Srh::parse(&b[..n]).unwrap();
        assert_eq!((s.len(), s.next_header(), s.segments_left()), (40, 4, 1));
        assert_eq!(
            (s.segment(0), s.segment(1), s.segment(2)),
            (Some(B), Some(A), None)
        );
    }

    #[test]
    fn bad_headers_are_refused_with_their_reason() {
        let mut b = [0u8; 64];
        let n = emit(&mut b, 41, &[A, B], 1).unwrap();
        assert_eq!(Srh::parse(&b[..n - 1]).err(), Some(SrhError::Truncated));
        assert_eq!(Srh::parse(&b[..7]).err(), Some(SrhError::Truncated));
        let mut t = b;
        t[2] = 0;
        assert_eq!(Srh::parse(&t).err(), Some(SrhError::NotSrh));
        let mut t = b;
        t[1] = 0;
        assert_eq!(Srh::parse(&t).err(), Some(SrhError::NoSegments));
        let mut t = b;
        t[4] = 2; // three segments in a header with room for two
        assert_eq!(Srh::parse(&t).err(), Some(SrhError::LastEntry));
        let mut t = b;
        t[3] = 3; // last entry 1: at most 2 segments left
        assert_eq!(Srh::parse(&t).err(), Some(SrhError::SegmentsLeft));
        t[3] = 2;
        assert!(Srh::parse(&t).is_ok(), "SL = last entry + 1 is allowed");
        assert!(emit(&mut b, 4, &[], 0).is_none());
        assert!(emit(&mut b[..39], 4, &[A, B], 1).is_none());
    }
}
