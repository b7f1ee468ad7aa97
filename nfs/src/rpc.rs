//! An ONC RPC `NULL` call over TCP (RFC 5531): the cheapest question an
//! RPC server answers, and so the readiness probe of the NFS server (NFS,
//! MOUNT) and of rpcbind. No library: a call is 44 bytes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The portmapper / rpcbind program.
pub const PORTMAP: (u32, u32) = (100_000, 2);
/// NFS version 3.
pub const NFS_V3: (u32, u32) = (100_003, 3);
/// NFS version 4.
pub const NFS_V4: (u32, u32) = (100_003, 4);
/// MOUNT version 3.
pub const MOUNT_V3: (u32, u32) = (100_005, 3);

/// Why a ping failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Connecting, sending or receiving failed.
    #[error("{addr}: {source}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// The socket error (refused, reset, timed out).
        #[source]
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("{0}: no answer within the timeout")]
    Timeout(SocketAddr),
    /// The reply is not a successful answer to our call.
    #[error("bad reply: {0}")]
    BadReply(String),
}

/// The record-marked TCP bytes of a `NULL` call with `AUTH_NONE`.
pub fn null_call(xid: u32, program: u32, version: u32) -> Vec<u8> {
    let words = [xid, 0, 2, program, version, 0, 0, 0, 0, 0];
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(&(0x8000_0000u32 | 40).to_be_bytes());
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// Checks a reply record (without its record mark) to call `xid`: a
/// `REPLY`, `MSG_ACCEPTED`, `SUCCESS`.
pub fn check_reply(xid: u32, body: &[u8]) -> Result<(), RpcError> {
    let word = |i: usize| -> Result<u32, RpcError> {
        body.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| RpcError::BadReply(format!("short reply ({} bytes)", body.len())))
    };
    if word(0)? != xid {
        return Err(RpcError::BadReply("xid mismatch".into()));
    }
    if word(1)? != 1 {
        return Err(RpcError::BadReply("not a reply".into()));
    }
    if word(2)? != 0 {
        return Err(RpcError::BadReply("call denied".into()));
    }
    // verifier: flavor, length, opaque body padded to 4 bytes
    let verf_len = word(4)? as usize;
    let accept = word(5 + verf_len.div_ceil(4))?;
    match accept {
        0 => Ok(()),
        1 => Err(RpcError::BadReply("program unavailable".into())),
        2 => Err(RpcError::BadReply("program version mismatch".into())),
        n => Err(RpcError::BadReply(format!("accept status {n}"))),
    }
}

/// Sends a `NULL` call for `(program, version)` to `addr` and waits for a
/// successful reply.
pub async fn ping(addr: SocketAddr, prog: (u32, u32), timeout: Duration) -> Result<(), RpcError> {
    let io = |source| RpcError::Io { addr, source };
    let call = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let xid: u32 = std::process::id() ^ 0x5a5a_0000;
        s.write_all(&null_call(xid, prog.0, prog.1))
            .await
            .map_err(io)?;
        let mut mark = [0u8; 4];
        s.read_exact(&mut mark).await.map_err(io)?;
        let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
        if len > 4096 {
            return Err(RpcError::BadReply(format!("reply of {len} bytes")));
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.map_err(io)?;
        check_reply(xid, &body)
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| RpcError::Timeout(addr))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn call_layout() {
        let c = null_call(7, 100_003, 3);
        assert_eq!(c.len(), 44);
        assert_eq!(&c[..4], &[0x80, 0, 0, 40]);
        assert_eq!(&c[4..8], &7u32.to_be_bytes());
        assert_eq!(&c[16..20], &100_003u32.to_be_bytes());
        assert_eq!(&c[20..24], &3u32.to_be_bytes());
    }

    #[test]
    fn replies() {
        assert!(check_reply(7, &words(&[7, 1, 0, 0, 0, 0])).is_ok());
        // a verifier with a 5-byte body is padded to 8
        assert!(check_reply(7, &words(&[7, 1, 0, 1, 5, 0, 0, 0])).is_ok());
        assert!(check_reply(8, &words(&[7, 1, 0, 0, 0, 0])).is_err());
        assert!(check_reply(7, &words(&[7, 1, 1, 0, 0, 0])).is_err());
        let e = check_reply(7, &words(&[7, 1, 0, 0, 0, 1])).unwrap_err();
        assert!(e.to_string().contains("program unavailable"));
        assert!(check_reply(7, &words(&[7, 1])).is_err());
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(ping(addr, NFS_V3, Duration::from_secs(1)).await.is_err());
    }
}
