//! Networking: TCP, UDP and Unix-domain sockets, shaped like `std::net`
//! and `std::os::unix::net`.
//!
//! Every call that would block in std suspends only the calling fiber; the
//! loop runs the others meanwhile. The stream types implement
//! `std::io::Read` and `Write` (also through `&T`), so blocking-style
//! crates run on them unchanged.
//!
//! Sockets belong to the loop that created them and are `!Send`. To move
//! one elsewhere, `into_std` it (that returns it in blocking mode) and
//! `from_std` it on the other side.
//!
//! Errors are `std::io::Error`s with std's kinds: `AddrInUse`,
//! `ConnectionRefused`, `ConnectionReset`, `BrokenPipe` (never a SIGPIPE),
//! `WouldBlock` for a read or write timeout, `TimedOut` for
//! `connect_timeout`, and `ECANCELED` once the fiber is cancelled
//! (see [`crate::fiber::is_cancelled`]).

mod addr;
mod balance;
pub(crate) mod socket;
mod tcp;
mod timeout;
mod udp;
mod unix;

pub use addr::{SocketAddrs, ToSocketAddrs};
pub use tcp::{DEFAULT_BACKLOG, Incoming, ListenOptions, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UCred, UnixDatagram, UnixIncoming, UnixListener, UnixStream};
