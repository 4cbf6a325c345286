//! Wire codec primitives: VPP's packed, big-endian encoding.

use std::fmt;

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload ended before the field `what` was complete.
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length/count field announces more elements than the payload can hold.
    BadLength {
        what: &'static str,
        count: usize,
        remaining: usize,
    },
    /// Bytes left over after the message (only from the `*_exact` decoders).
    Trailing(usize),
    /// The message id in the payload is not the one expected.
    WrongId { expected: u16, got: u16 },
    /// No message with this id is registered.
    UnknownId(u16),
    /// A string field that is not UTF-8 (refused rather than altered).
    BadUtf8 { what: &'static str },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what, need, have } => {
                write!(
                    f,
                    "truncated payload: {what} needs {need} bytes, {have} left"
                )
            }
            DecodeError::BadLength {
                what,
                count,
                remaining,
            } => write!(
                f,
                "length field of {what} says {count} elements but only {remaining} bytes remain"
            ),
            DecodeError::Trailing(n) => write!(f, "{n} trailing bytes after message"),
            DecodeError::WrongId { expected, got } => {
                write!(f, "message id {got}, expected {expected}")
            }
            DecodeError::UnknownId(id) => write!(f, "unknown message id {id}"),
            DecodeError::BadUtf8 { what } => write!(f, "{what} is not UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A bounds-checked cursor over a payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Take the next `n` bytes, or fail without consuming anything.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                what,
                need: n,
                have: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn take_array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

/// A value with a VPP wire encoding.
pub trait Wire: Sized {
    /// Encoded size of the fixed part (exact size for types without variable-length members).
    const MIN_SIZE: usize;
    fn encode(&self, buf: &mut Vec<u8>);
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Encode into a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::MIN_SIZE);
        self.encode(&mut v);
        v
    }
    /// Decode from the start of `b`; trailing bytes are ignored (as VPP does).
    fn from_bytes(b: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(b))
    }
    /// Decode the whole of `b`; trailing bytes are an error.
    fn from_bytes_exact(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let v = Self::decode(&mut r)?;
        match r.remaining() {
            0 => Ok(v),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const MIN_SIZE: usize = std::mem::size_of::<$t>();
            fn encode(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.to_be_bytes());
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(r.take_array(stringify!($t))?))
            }
        }
    )*};
}
wire_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Wire for f64 {
    const MIN_SIZE: usize = 8;
    fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.to_bits().to_be_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(f64::from_bits(u64::from_be_bytes(r.take_array("f64")?)))
    }
}

impl Wire for bool {
    const MIN_SIZE: usize = 1;
    fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(*self as u8);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.take(1, "bool")?[0] != 0)
    }
}

/// Integer types usable as the count field of a variable-length array.
pub trait Count: Copy {
    /// The count for a vector of `n` elements, saturated to the type's range.
    fn from_len(n: usize) -> Self;
    fn to_usize(self) -> usize;
}

macro_rules! count_int {
    ($($t:ty),*) => {$(
        impl Count for $t {
            fn from_len(n: usize) -> Self {
                <$t>::try_from(n).unwrap_or(<$t>::MAX)
            }
            fn to_usize(self) -> usize {
                usize::try_from(self).unwrap_or(usize::MAX)
            }
        }
    )*};
}
count_int!(u8, u16, u32, u64, i8, i16, i32);

/// Encode a fixed-size string: at most `n - 1` bytes (cut on a char boundary), NUL padded to `n`.
pub fn put_fixed_str(buf: &mut Vec<u8>, s: &str, n: usize) {
    let mut end = s.len().min(n.saturating_sub(1));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.extend_from_slice(&s.as_bytes()[..end]);
    buf.resize(buf.len() + (n - end), 0);
}

/// Decode a fixed-size string of `n` bytes, up to the first NUL.
pub fn get_fixed_str(r: &mut Reader<'_>, n: usize) -> Result<String, DecodeError> {
    let b = r.take(n, "string")?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    utf8(&b[..end])
}

/// Encode a variable-length string: u32 length then the bytes, no NUL.
pub fn put_vstr(buf: &mut Vec<u8>, s: &str) {
    let n = u32::from_len(s.len()) as usize;
    (n as u32).encode(buf);
    buf.extend_from_slice(&s.as_bytes()[..n]);
}

/// Decode a variable-length string; the length is bounded by the remaining bytes.
pub fn get_vstr(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let n = u32::decode(r)? as usize;
    if n > r.remaining() {
        return Err(DecodeError::BadLength {
            what: "string",
            count: n,
            remaining: r.remaining(),
        });
    }
    let b = r.take(n, "string")?;
    utf8(b)
}

/// A string's bytes, which must be UTF-8 (VPP passes bytes through; a Rust `String` cannot
/// hold others, and replacing them would change what the client sent).
fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| DecodeError::BadUtf8 { what: "string" })
}

/// Decode a fixed array `[T; N]`.
pub fn decode_array<T: Wire, const N: usize>(r: &mut Reader<'_>) -> Result<[T; N], DecodeError> {
    if N.saturating_mul(T::MIN_SIZE) > r.remaining() {
        return Err(DecodeError::Truncated {
            what: "array",
            need: N.saturating_mul(T::MIN_SIZE),
            have: r.remaining(),
        });
    }
    let mut v = Vec::with_capacity(N);
    for _ in 0..N {
        v.push(T::decode(r)?);
    }
    match v.try_into() {
        Ok(a) => Ok(a),
        Err(_) => Err(DecodeError::BadLength {
            what: "array",
            count: N,
            remaining: r.remaining(),
        }),
    }
}

/// Decode `count` elements of a variable-length array. The count is checked against the
/// remaining bytes before anything is allocated, so a hostile count cannot cause a large
/// allocation.
pub fn decode_vla<T: Wire>(r: &mut Reader<'_>, count: usize) -> Result<Vec<T>, DecodeError> {
    let per = T::MIN_SIZE.max(1);
    if count.saturating_mul(per) > r.remaining() {
        return Err(DecodeError::BadLength {
            what: "array",
            count,
            remaining: r.remaining(),
        });
    }
    let mut v = Vec::with_capacity(count);
    for _ in 0..count {
        v.push(T::decode(r)?);
    }
    Ok(v)
}

/// Default value of a fixed array of any length.
pub fn default_array<T: Default, const N: usize>() -> [T; N] {
    std::array::from_fn(|_| T::default())
}
