//! A control socket: one typed message and its descriptors per datagram.
//!
//! `SOCK_SEQPACKET` keeps message boundaries, so a peer cannot desynchronise
//! the stream. On receipt the datagram size is capped at
//! [`MAX_MESSAGE`](crate::msg::MAX_MESSAGE) and the descriptor count at
//! [`MAX_FDS`](crate::msg::MAX_FDS); a truncated datagram, truncated control
//! data or a descriptor count that does not match the message is an error
//! (and every received descriptor is closed). Descriptors arrive close-on-exec.
//! Message buffers are zeroed after use, since some carry secrets.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use zeroize::{Zeroize, Zeroizing};

use crate::msg::{self, CodecError, MAX_FDS, MAX_MESSAGE, Message};

/// Why a control message could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("control datagram or its descriptors were truncated")]
    Truncated,
    #[error("message carries {got} descriptors, expected {expected}")]
    FdCount { got: usize, expected: usize },
}

/// A message received with the descriptors that came with it.
#[derive(Debug)]
pub struct Received<M> {
    pub msg: M,
    pub fds: Vec<OwnedFd>,
}

/// A blocking `SOCK_SEQPACKET` control socket.
#[derive(Debug)]
pub struct ControlSocket {
    fd: OwnedFd,
}

impl ControlSocket {
    /// A connected pair, both ends close-on-exec.
    pub fn pair() -> std::io::Result<(Self, Self)> {
        let (a, b) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        Ok((Self { fd: a }, Self { fd: b }))
    }

    /// Takes ownership of the control socket a child inherited at `fd`.
    ///
    /// Fails unless `fd` is an open `SOCK_SEQPACKET` socket.
    pub fn inherited(fd: RawFd) -> std::io::Result<Self> {
        let raw_type = fd_socket_type(fd)?;
        if raw_type != libc::SOCK_SEQPACKET {
            return Err(std::io::Error::other(format!(
                "fd {fd} is not a SOCK_SEQPACKET control socket"
            )));
        }
        // SAFETY: `fd` was just checked to be an open socket; the process
        // inherited it for this purpose and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        set_cloexec(&fd)?;
        Ok(Self { fd })
    }

    /// Sends one message and exactly `msg.fds()` descriptors.
    pub fn send<M: Message>(&self, msg: &M, fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
        send_raw(self.fd.as_raw_fd(), msg, fds)
    }

    /// Receives one message; `Ok(None)` when the peer has closed.
    pub fn recv<M: Message>(&self) -> Result<Option<Received<M>>, ChannelError> {
        recv_raw(self.fd.as_raw_fd())
    }

    /// Switches to non-blocking mode for use on a tokio runtime.
    pub fn into_async(self) -> std::io::Result<AsyncControlSocket> {
        let flags = nix::fcntl::fcntl(&self.fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&self.fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        // SAFETY: `OwnedFd` is open and always returns the same descriptor
        // until it is dropped, which happens only with the `AsyncFd`.
        let fd = unsafe { AsyncFd::register(self.fd) }.map_err(std::io::Error::from)?;
        Ok(AsyncControlSocket { fd })
    }

    /// The descriptor, to hand to a child at spawn.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A non-blocking control socket driven by tokio.
#[derive(Debug)]
pub struct AsyncControlSocket {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncControlSocket {
    /// Sends one message and exactly `msg.fds()` descriptors.
    pub async fn send<M: Message>(
        &self,
        msg: &M,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), ChannelError> {
        loop {
            let mut guard = self.fd.ready(Interest::WRITABLE).await?;
            match send_raw(guard.get_inner().as_raw_fd(), msg, fds) {
                Err(ChannelError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                }
                other => return other,
            }
        }
    }

    /// Receives one message; `Ok(None)` when the peer has closed.
    pub async fn recv<M: Message>(&self) -> Result<Option<Received<M>>, ChannelError> {
        loop {
            let mut guard = self.fd.ready(Interest::READABLE).await?;
            match recv_raw(guard.get_inner().as_raw_fd()) {
                Err(ChannelError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                }
                other => return other,
            }
        }
    }
}

fn send_raw<M: Message>(fd: RawFd, msg: &M, fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
    if fds.len() != msg.fds() || fds.len() > MAX_FDS {
        return Err(ChannelError::FdCount { got: fds.len(), expected: msg.fds() });
    }
    let bytes = Zeroizing::new(msg::encode(msg)?);
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    let iov = [IoSlice::new(&bytes)];
    sendmsg::<()>(fd, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(std::io::Error::from)?;
    Ok(())
}

fn recv_raw<M: Message>(fd: RawFd) -> Result<Option<Received<M>>, ChannelError> {
    let mut buf = RecvBuf { bytes: vec![0u8; MAX_MESSAGE + 1], filled: 0 };
    let mut space = cmsg_space!([RawFd; MAX_FDS]);
    let (len, fds, truncated) = {
        let mut iov = [IoSliceMut::new(&mut buf.bytes)];
        let got = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(std::io::Error::from)?;
        let mut fds = Vec::new();
        for cmsg in got.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: the kernel just installed these descriptors in this
                // process for us; nothing else refers to them.
                fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
            }
        }
        let truncated = got.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        (got.bytes, fds, truncated)
    };
    buf.filled = len.min(MAX_MESSAGE + 1);
    if truncated || len > MAX_MESSAGE {
        return Err(ChannelError::Truncated);
    }
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    let msg: M = msg::decode(&buf.bytes[..len])?;
    if fds.len() != msg.fds() {
        return Err(ChannelError::FdCount { got: fds.len(), expected: msg.fds() });
    }
    Ok(Some(Received { msg, fds }))
}

/// A receive buffer that wipes, on drop, the bytes a datagram filled: a
/// worker's `Init` carries its secrets. Wiping only those keeps a flood of
/// small messages cheap.
struct RecvBuf {
    bytes: Vec<u8>,
    filled: usize,
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        self.bytes[..self.filled].zeroize();
    }
}

fn fd_socket_type(fd: RawFd) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given; an
    // invalid fd makes the call fail with EBADF/ENOTSOCK, which we return.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&raw mut value).cast(), &raw mut len)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value)
}

fn set_cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{ToBroker, ToGateway};

    #[test]
    fn carries_a_message_and_its_descriptor() {
        let (a, b) = ControlSocket::pair().expect("socketpair");
        let (x, _y) = ControlSocket::pair().expect("socketpair");
        a.send(&ToGateway::Channel { app: "blog".into(), generation: 1 }, &[x.as_fd()])
            .expect("send");
        let got = b.recv::<ToGateway>().expect("recv").expect("not closed");
        assert_eq!(got.msg, ToGateway::Channel { app: "blog".into(), generation: 1 });
        assert_eq!(got.fds.len(), 1);
    }

    #[test]
    fn refuses_descriptors_a_message_does_not_expect() {
        let (a, b) = ControlSocket::pair().expect("socketpair");
        let (x, _y) = ControlSocket::pair().expect("socketpair");
        // Forge a `Ready` that smuggles a descriptor.
        let raw = [x.as_fd().as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let iov = [IoSlice::new(br#""Ready""#)];
        sendmsg::<()>(a.fd.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).expect("sendmsg");
        assert!(matches!(b.recv::<ToBroker>(), Err(ChannelError::FdCount { got: 1, expected: 0 })));
    }

    #[test]
    fn reports_garbage_and_end_of_stream() {
        let (a, b) = ControlSocket::pair().expect("socketpair");
        let iov = [IoSlice::new(b"\xff\x00garbage")];
        sendmsg::<()>(a.fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), None).expect("sendmsg");
        assert!(matches!(b.recv::<ToBroker>(), Err(ChannelError::Codec(_))));
        drop(a);
        assert!(b.recv::<ToBroker>().expect("eof is not an error").is_none());
    }
}
