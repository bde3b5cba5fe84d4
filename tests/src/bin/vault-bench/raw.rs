//! The ceilings: a raw quinn server with the node's TLS and transport
//! settings (uploads swallowed, downloads of constant bytes) and its
//! client. No vault code runs on these streams: they show what the
//! transport alone can do on this machine.

use std::net::SocketAddr;
use std::sync::Arc;

use tests::TestPki;
use vault_client::transport;

/// A quinn server with the node's TLS and transport settings that swallows
/// uploads and serves zero-copy downloads: the ceiling for the vault.
pub(crate) async fn start_server(pki: &TestPki) -> anyhow::Result<SocketAddr> {
    let identity = pki.identity("node-1")?;
    let tls = pki::server_tls_config(&identity, &[])?;
    let config = transport::server_config(tls).map_err(anyhow::Error::msg)?;
    let socket = transport::bind_udp("127.0.0.1:0".parse()?)?;
    let endpoint = transport::endpoint(socket, Some(config))?;
    let addr = endpoint.local_addr()?;
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else {
                    return;
                };
                while let Ok((send, recv)) = connection.accept_bi().await {
                    tokio::spawn(serve(send, recv));
                }
            });
        }
    });
    Ok(addr)
}

/// Request: 8-byte BE length to download (0 = upload follows).
async fn serve(mut send: quinn::SendStream, mut recv: quinn::RecvStream) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    recv.read_exact(&mut header).await?;
    let want = u64::from_be_bytes(header);
    if want == 0 {
        while recv.read_chunk(usize::MAX, true).await?.is_some() {}
        send.write_all(b"k").await?;
    } else {
        let chunk = bytes::Bytes::from(vec![7u8; 256 * 1024]);
        let mut left = want;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            send.write_chunk(chunk.slice(..n)).await?;
            left -= n as u64;
        }
    }
    send.finish()?;
    let _ = send.stopped().await;
    Ok(())
}

/// A client connection to the raw server at `addr`, as civil-affairs.
pub(crate) async fn connection(
    pki: &TestPki,
    addr: SocketAddr,
) -> anyhow::Result<quinn::Connection> {
    let identity = pki.identity("civil-affairs")?;
    let config =
        transport::client_config(pki::client_tls_config(&identity)?).map_err(anyhow::Error::msg)?;
    let mut endpoint = transport::endpoint(transport::bind_udp("127.0.0.1:0".parse()?)?, None)?;
    endpoint.set_default_client_config(config);
    Ok(endpoint.connect(addr, "localhost")?.await?)
}

/// Uploads `payload` and waits for the server's acknowledgement.
pub(crate) async fn upload(
    connection: &quinn::Connection,
    payload: Arc<Vec<u8>>,
) -> anyhow::Result<()> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&0u64.to_be_bytes()).await?;
    send.write_all(&payload).await?;
    send.finish()?;
    let mut ack = [0u8; 1];
    recv.read_exact(&mut ack).await?;
    Ok(())
}

/// Downloads `size` bytes.
pub(crate) async fn download(connection: &quinn::Connection, size: u64) -> anyhow::Result<()> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&size.to_be_bytes()).await?;
    send.finish()?;
    let mut got = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    // Read into a buffer like the client does (not zero-copy), to be fair.
    while let Some(n) = recv.read(&mut buf).await? {
        got += n as u64;
    }
    anyhow::ensure!(got == size, "short raw download");
    Ok(())
}
