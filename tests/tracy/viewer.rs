//! Just enough of a Tracy 0.14 viewer (protocol 82) to see which zones,
//! fiber tracks and plots loom's client sends: the handshake, the LZ4
//! stream of events, and the queries that turn the events' pointers into
//! names.
//!
//! The client (tracy-client-sys `=0.30.1`; `client/TracyProfiler.cpp`,
//! `common/TracyProtocol.hpp`, `common/TracyQueue.hpp`) sends a zone's
//! source location, a string, a fiber's or a plot's name only as an
//! address, and their contents only when the viewer asks (`ServerQuery*`).
//! Everything is little-endian and packed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Tracy 0.14's `ProtocolVersion`.
const PROTOCOL: u32 = 82;
const HANDSHAKE_WELCOME: u8 = 1;
/// `sizeof(WelcomeMessage)`: eight 8-byte fields, two flag bytes, a
/// 12-byte CPU vendor, a 4-byte CPU id, a 64-byte program name and 1024
/// bytes of host information.
const WELCOME_BYTES: usize = 8 * 8 + 2 + 12 + 4 + 64 + 1024;
const WELCOME_PID: usize = 6 * 8;
const WELCOME_FLAGS: usize = 8 * 8;
/// `WelcomeFlag::OnDemand`: an `OnDemandPayloadMessage` (16 bytes) follows.
const ON_DEMAND: u8 = 1;
/// The client fills a frame up to `TargetFrameSize` before compressing it.
const FRAME_BYTES: usize = 256 * 1024;
/// How far back an LZ4 match may reach.
const LZ4_WINDOW: usize = 64 * 1024;

/// `QueueType` values (TracyQueue.hpp) this viewer reads.
mod kind {
    pub const MESSAGE: u8 = 2;
    pub const ZONE_BEGIN: u8 = 19;
    pub const ZONE_BEGIN_32: u8 = 20;
    pub const ZONE_BEGIN_16: u8 = 21;
    pub const ZONE_END: u8 = 25;
    pub const ZONE_END_32: u8 = 26;
    pub const ZONE_END_16: u8 = 27;
    pub const PLOT_DATA_INT: u8 = 55;
    pub const PLOT_DATA_FLOAT: u8 = 56;
    pub const PLOT_DATA_DOUBLE: u8 = 57;
    pub const FIBER_ENTER: u8 = 68;
    pub const FIBER_LEAVE: u8 = 69;
    pub const TERMINATE: u8 = 73;
    pub const KEEP_ALIVE: u8 = 74;
    pub const THREAD_CONTEXT: u8 = 75;
    pub const SOURCE_LOCATION: u8 = 87;
    pub const SYS_TIME_REPORT: u8 = 97;
    pub const SYS_POWER_REPORT: u8 = 98;
    pub const ACK_SERVER_QUERY_NOOP: u8 = 108;
    pub const CPU_TOPOLOGY: u8 = 111;
    pub const SINGLE_STRING_DATA: u8 = 112;
    pub const SECOND_STRING_DATA: u8 = 113;
    pub const SINGLE_STRING_DATA_8: u8 = 114;
    pub const SECOND_STRING_DATA_8: u8 = 115;
    pub const THREAD_GROUP_HINT: u8 = 117;
    pub const STRING_DATA: u8 = 119;
    pub const THREAD_NAME: u8 = 120;
    pub const PLOT_NAME: u8 = 121;
    pub const FIBER_NAME: u8 = 131;
}

/// `ServerQuery` values (TracyProtocol.hpp) this viewer sends.
mod query {
    pub const STRING: u8 = 1;
    pub const THREAD_STRING: u8 = 2;
    pub const SOURCE_LOCATION: u8 = 3;
    pub const PLOT_NAME: u8 = 4;
    pub const FIBER_NAME: u8 = 7;
}

/// A connected viewer, past the handshake.
pub struct Connection {
    socket: TcpStream,
    lz4: Lz4Stream,
    deadline: Instant,
}

/// What the handshake tells about the client.
pub struct Welcome {
    pub pid: u64,
}

impl Connection {
    /// Connects to the client at `addr` as a protocol-82 viewer. Every read
    /// of this connection fails (times out) once `deadline` has passed.
    pub fn open(addr: SocketAddr, deadline: Instant) -> io::Result<(Connection, Welcome)> {
        let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        let mut connection = Connection {
            socket,
            lz4: Lz4Stream::default(),
            deadline,
        };
        connection.socket.write_all(b"TracyPrf")?;
        connection.socket.write_all(&PROTOCOL.to_le_bytes())?;
        let mut status = [0u8];
        connection.read_exact(&mut status)?;
        if status[0] != HANDSHAKE_WELCOME {
            return Err(io::Error::other(format!("handshake status {}", status[0])));
        }
        let mut welcome = vec![0u8; WELCOME_BYTES];
        connection.read_exact(&mut welcome)?;
        if welcome[WELCOME_FLAGS] & ON_DEMAND != 0 {
            connection.read_exact(&mut [0u8; 16])?;
        }
        let pid = Bytes(&welcome[WELCOME_PID..]).u64()?;
        Ok((connection, Welcome { pid }))
    }

    /// Reads one frame, applies its events to `trace`, and sends the
    /// queries they call for.
    pub fn read_frame(&mut self, trace: &mut Trace) -> io::Result<()> {
        let mut size = [0u8; 4];
        self.read_exact(&mut size)?;
        let mut block = vec![0u8; u32::from_le_bytes(size) as usize];
        self.read_exact(&mut block)?;
        let frame = self.lz4.decode(&block)?;
        // Whole events only: the client commits a frame before appending an
        // event (with its string) that would not fit (`NeedDataSize`).
        let mut bytes = Bytes(&frame);
        let mut queries = Vec::new();
        while !bytes.0.is_empty() {
            trace.apply(Event::read(&mut bytes)?, &mut queries);
        }
        for query in queries {
            self.socket.write_all(&query.to_bytes())?;
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.socket.set_read_timeout(Some(left))?;
        self.socket
            .read_exact(buf)
            .map_err(|error| match error.kind() {
                io::ErrorKind::WouldBlock => io::ErrorKind::TimedOut.into(),
                _ => error,
            })
    }
}

/// The client's compression: one `LZ4_compress_fast_continue` stream per
/// connection, each frame one block whose matches may reach back into
/// the frames before it — at most 64 KiB back, which its ring buffer
/// (three frames) always keeps in place. So the last 64 KiB decoded are
/// all the dictionary a block needs, wherever the ring wrapped.
#[derive(Default)]
struct Lz4Stream {
    window: Vec<u8>,
}

impl Lz4Stream {
    fn decode(&mut self, block: &[u8]) -> io::Result<Vec<u8>> {
        let mut frame = vec![0u8; FRAME_BYTES];
        let len = lz4_flex::block::decompress_into_with_dict(block, &mut frame, &self.window)
            .map_err(io::Error::other)?;
        frame.truncate(len);
        self.window.extend_from_slice(&frame);
        let stale = self.window.len().saturating_sub(LZ4_WINDOW);
        self.window.drain(..stale);
        Ok(frame)
    }
}

/// One event of a frame, as far as this viewer cares.
#[derive(Debug)]
enum Event {
    /// The events after it happened on this thread.
    ThreadContext(u32),
    ZoneBegin(ZoneBegin),
    FiberEnter(FiberEnter),
    FiberLeave(FiberLeave),
    PlotPoint(PlotPoint),
    /// The answer to `ServerQuerySourceLocation`.
    SourceLocation(SourceLocation),
    /// The answer to a query for a string.
    Text(Text),
    /// Anything else, read past.
    Other,
}

/// `QueueZoneBegin` (or its 32- or 16-bit-time forms); the time is a delta
/// this viewer has no use for.
#[derive(Debug)]
struct ZoneBegin {
    srcloc: u64,
}

/// `QueueFiberEnter`: `thread` now runs the fiber named at `fiber` (the
/// name's address is the fiber's identity).
#[derive(Debug)]
struct FiberEnter {
    fiber: u64,
    thread: u32,
}

/// `QueueFiberLeave`: `thread` is back on its own track.
#[derive(Debug)]
struct FiberLeave {
    thread: u32,
}

/// `QueuePlotDataInt` (or `Float`, `Double`): a point of the plot named at
/// `name` (the name's address is the plot's identity). Its time, a delta
/// from the thread's previous event, is read past: the order of a plot's
/// points is all this viewer needs.
#[derive(Debug)]
struct PlotPoint {
    name: u64,
    value: f64,
}

/// `QueueSourceLocation`, of which only the name's address matters here
/// (the string to ask for next). It does not say which location it
/// describes: answers come in the order of the queries.
#[derive(Debug)]
struct SourceLocation {
    name: u64,
}

/// `QueueStringTransfer` and a 16-bit length: the string at `ptr` (or the
/// name of thread `ptr`), as `kind` (`StringData`, `ThreadName`,
/// `FiberName`, `PlotName`...).
#[derive(Debug)]
struct Text {
    kind: u8,
    ptr: u64,
    text: String,
}

impl Event {
    fn read(bytes: &mut Bytes<'_>) -> io::Result<Event> {
        use kind::*;
        let kind = bytes.u8()?;
        Ok(match kind {
            THREAD_CONTEXT => Event::ThreadContext(bytes.u32()?),
            ZONE_BEGIN | ZONE_BEGIN_32 | ZONE_BEGIN_16 => {
                bytes.skip(match kind {
                    ZONE_BEGIN => 8,
                    ZONE_BEGIN_32 => 4,
                    _ => 2,
                })?;
                Event::ZoneBegin(ZoneBegin {
                    srcloc: bytes.u64()?,
                })
            }
            FIBER_ENTER => {
                bytes.skip(8)?;
                let fiber = bytes.u64()?;
                let thread = bytes.u32()?;
                bytes.skip(4)?; // group hint
                Event::FiberEnter(FiberEnter { fiber, thread })
            }
            FIBER_LEAVE => {
                bytes.skip(8)?;
                Event::FiberLeave(FiberLeave {
                    thread: bytes.u32()?,
                })
            }
            PLOT_DATA_INT | PLOT_DATA_FLOAT | PLOT_DATA_DOUBLE => {
                let name = bytes.u64()?;
                bytes.skip(8)?; // time
                // One type for all three: loom's gauges (integers) are far
                // below 2^53, where f64 holds them exactly.
                let value = match kind {
                    PLOT_DATA_INT => bytes.i64()? as f64,
                    PLOT_DATA_FLOAT => f32::from_bits(bytes.u32()?).into(),
                    _ => f64::from_bits(bytes.u64()?),
                };
                Event::PlotPoint(PlotPoint { name, value })
            }
            SOURCE_LOCATION => {
                let name = bytes.u64()?;
                bytes.skip(8 + 8 + 4 + 3)?; // function, file, line, colour
                Event::SourceLocation(SourceLocation { name })
            }
            STRING_DATA | THREAD_NAME | FIBER_NAME | PLOT_NAME => {
                let ptr = bytes.u64()?;
                let len = usize::from(bytes.u16()?);
                let text = String::from_utf8_lossy(bytes.take(len)?).into_owned();
                Event::Text(Text { kind, ptr, text })
            }
            // Strings that precede the event they belong to.
            SINGLE_STRING_DATA_8 | SECOND_STRING_DATA_8 => {
                let len = usize::from(bytes.u8()?);
                bytes.skip(len)?;
                Event::Other
            }
            SINGLE_STRING_DATA | SECOND_STRING_DATA => {
                let len = usize::from(bytes.u16()?) + 256;
                bytes.skip(len)?;
                Event::Other
            }
            _ => {
                // The other events this client sends, by their
                // `QueueDataSize` less the type byte. An event missing
                // here cannot be skipped (its size is not on the wire):
                // one loom starts to emit must be added.
                let len = match kind {
                    KEEP_ALIVE | ACK_SERVER_QUERY_NOOP | TERMINATE => 0,
                    // The client's own log lines, text in the string
                    // before them, when its threads get to them ("Loaded
                    // 121437 kernel symbols" from its symbol thread).
                    MESSAGE => 9,
                    ZONE_END => 8,
                    ZONE_END_32 => 4,
                    ZONE_END_16 => 2,
                    SYS_TIME_REPORT => 12,
                    SYS_POWER_REPORT => 24,
                    CPU_TOPOLOGY => 16,
                    THREAD_GROUP_HINT => 8,
                    _ => {
                        return Err(io::Error::other(format!(
                            "event type {kind}, unknown to this viewer"
                        )));
                    }
                };
                bytes.skip(len)?;
                Event::Other
            }
        })
    }
}

/// A query to the client: `ServerQueryPacket`, a type byte, an address
/// (or thread id) and 4 bytes this viewer never needs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Query {
    kind: u8,
    ptr: u64,
}

impl Query {
    fn to_bytes(self) -> [u8; 13] {
        let mut packet = [0u8; 13];
        packet[0] = self.kind;
        packet[1..9].copy_from_slice(&self.ptr.to_le_bytes());
        packet
    }
}

/// Where a zone was drawn: a thread's own track, or a fiber's (keyed by
/// its name's address, as the client keys it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Thread(u32),
    Fiber(u64),
}

/// What the viewer has learned so far, and what it has asked for.
#[derive(Default)]
pub struct Trace {
    /// The thread of the events being read (`ThreadContext`).
    thread: u32,
    /// The fiber each thread runs, between its enter and leave.
    fiber_of: HashMap<u32, u64>,
    /// The track of each beginning of a zone, in order, by the address of
    /// the zone's source location.
    zones: HashMap<u64, Vec<Track>>,
    /// Source locations asked for, oldest first, still unanswered.
    pending_locations: VecDeque<u64>,
    /// A source location's name's address.
    location_names: HashMap<u64, u64>,
    strings: HashMap<u64, String>,
    thread_names: HashMap<u32, String>,
    fiber_names: HashMap<u64, String>,
    /// Each plot's points so far, in order, by its name's address.
    plots: HashMap<u64, Vec<f64>>,
    plot_names: HashMap<u64, String>,
    asked: HashSet<Query>,
}

impl Trace {
    /// The track of each beginning of a zone named `name` so far, in order
    /// (a zone begun again, as in replay mode, is there once per beginning).
    pub fn tracks_of(&self, name: &str) -> Vec<Track> {
        let mut tracks = Vec::new();
        for (srcloc, begun) in &self.zones {
            if self.zone_name(*srcloc) == Some(name) {
                tracks.extend(begun);
            }
        }
        tracks
    }

    /// `track`'s name, once the client has told it.
    pub fn track_name(&self, track: Track) -> Option<&str> {
        match track {
            Track::Thread(thread) => self.thread_names.get(&thread),
            Track::Fiber(fiber) => self.fiber_names.get(&fiber),
        }
        .map(String::as_str)
    }

    /// The points of the plot named `name` so far, in order (a plot is
    /// drawn by one thread, which sends them in order).
    pub fn plot(&self, name: &str) -> &[f64] {
        self.plot_names
            .iter()
            .find(|(_, plot)| *plot == name)
            .and_then(|(ptr, _)| self.plots.get(ptr))
            .map_or(&[], Vec::as_slice)
    }

    /// A query the client has not answered yet, if any.
    pub fn unanswered(&self) -> Option<String> {
        let query = self.asked.iter().find(|query| match query.kind {
            query::STRING => !self.strings.contains_key(&query.ptr),
            query::THREAD_STRING => !self.thread_names.contains_key(&(query.ptr as u32)),
            query::SOURCE_LOCATION => !self.location_names.contains_key(&query.ptr),
            query::PLOT_NAME => !self.plot_names.contains_key(&query.ptr),
            _ => !self.fiber_names.contains_key(&query.ptr),
        })?;
        Some(format!(
            "no answer to query {} for {:#x}",
            query.kind, query.ptr
        ))
    }

    /// The name of the zone whose source location is at `srcloc`, once the
    /// client has told it.
    fn zone_name(&self, srcloc: u64) -> Option<&str> {
        let name = self.location_names.get(&srcloc)?;
        self.strings.get(name).map(String::as_str)
    }

    fn apply(&mut self, event: Event, queries: &mut Vec<Query>) {
        let mut ask = |kind, ptr| {
            let query = Query { kind, ptr };
            if self.asked.insert(query) {
                queries.push(query);
                true
            } else {
                false
            }
        };
        match event {
            Event::ThreadContext(thread) => self.thread = thread,
            Event::ZoneBegin(ZoneBegin { srcloc }) => {
                let track = match self.fiber_of.get(&self.thread) {
                    Some(&fiber) => Track::Fiber(fiber),
                    None => Track::Thread(self.thread),
                };
                if let Track::Thread(thread) = track {
                    ask(query::THREAD_STRING, u64::from(thread));
                }
                if ask(query::SOURCE_LOCATION, srcloc) {
                    self.pending_locations.push_back(srcloc);
                }
                self.zones.entry(srcloc).or_default().push(track);
            }
            Event::FiberEnter(FiberEnter { fiber, thread }) => {
                ask(query::FIBER_NAME, fiber);
                self.fiber_of.insert(thread, fiber);
            }
            Event::FiberLeave(FiberLeave { thread }) => {
                self.fiber_of.remove(&thread);
            }
            Event::PlotPoint(PlotPoint { name, value }) => {
                ask(query::PLOT_NAME, name);
                self.plots.entry(name).or_default().push(value);
            }
            Event::SourceLocation(SourceLocation { name }) => {
                ask(query::STRING, name);
                if let Some(srcloc) = self.pending_locations.pop_front() {
                    self.location_names.insert(srcloc, name);
                }
            }
            Event::Text(Text { kind, ptr, text }) => {
                match kind {
                    kind::STRING_DATA => self.strings.insert(ptr, text),
                    kind::THREAD_NAME => self.thread_names.insert(ptr as u32, text),
                    kind::FIBER_NAME => self.fiber_names.insert(ptr, text),
                    kind::PLOT_NAME => self.plot_names.insert(ptr, text),
                    _ => None,
                };
            }
            Event::Other => {}
        }
    }
}

/// The zones received, a line per track and name, and the plots, a line
/// each, for failure messages.
impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for (&srcloc, tracks) in &self.zones {
            let name = self
                .zone_name(srcloc)
                .map_or_else(|| format!("{srcloc:#x}"), str::to_owned);
            for &track in tracks {
                let track = self
                    .track_name(track)
                    .map_or_else(|| format!("{track:?}"), str::to_owned);
                *counts.entry((track, name.clone())).or_default() += 1;
            }
        }
        let mut lines: Vec<_> = counts.into_iter().collect();
        lines.sort();
        writeln!(f, "zones begun:")?;
        for ((track, name), count) in lines {
            writeln!(f, "  {track}: {name} ×{count}")?;
        }
        let mut plots: Vec<_> = self.plots.iter().collect();
        plots.sort_by_key(|(ptr, _)| self.plot_names.get(ptr));
        writeln!(f, "plots:")?;
        for (ptr, points) in plots {
            let name = self
                .plot_names
                .get(ptr)
                .map_or_else(|| format!("{ptr:#x}"), String::clone);
            writeln!(f, "  {name}: {points:?}")?;
        }
        Ok(())
    }
}

/// A cursor over a decoded frame.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, len: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < len {
            return Err(io::Error::other("an event cut short by its frame's end"));
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn skip(&mut self, len: usize) -> io::Result<()> {
        self.take(len).map(drop)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> io::Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}
