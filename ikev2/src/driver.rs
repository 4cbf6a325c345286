//! A small tokio driver: one UDP socket, a command channel, and the engine's timers. Child SA
//! events go to the embedding code's `ChildSaSink`.

use crate::engine::{ChildSa, ChildSaSink, Engine, Profile, IKE_PORT, NAT_T_PORT};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub enum Command {
    AddProfile(Box<Profile>),
    RemoveProfile(String),
    Initiate(String),
    RekeyChild(u32),
    DeleteChild(u32),
    RekeyIke(String),
    DeleteIke(String),
    Children(String, oneshot::Sender<Vec<ChildSa>>),
    Counters(oneshot::Sender<crate::engine::Counters>),
    IkeSas(oneshot::Sender<Vec<crate::engine::IkeSaInfo>>),
    Stop,
}

/// Hands queued events to the socket and the sink.
async fn flush(
    ike: &UdpSocket,
    natt: &UdpSocket,
    engine: &mut Engine,
    sink: &mut impl ChildSaSink,
) {
    while let Some(ev) = engine.poll_event() {
        if let Some((from_port, to, data)) = ev.deliver(sink) {
            let socket = if from_port == NAT_T_PORT { natt } else { ike };
            if let Err(e) = socket.send_to(&data, to).await {
                log::warn!("ikev2: send to {to}: {e}");
            }
        }
    }
}

/// Runs until `Command::Stop` or the channel closes; returns the engine. `ike` is bound to
/// port 500, `natt` to 4500 (IKE after NAT detection, with the non-ESP marker).
pub async fn run(
    ike: UdpSocket,
    natt: UdpSocket,
    mut engine: Engine,
    sink: &mut impl ChildSaSink,
    mut commands: mpsc::Receiver<Command>,
) -> Engine {
    let mut buf = vec![0u8; crate::wire::MAX_MESSAGE];
    let mut buf2 = vec![0u8; crate::wire::MAX_MESSAGE];
    loop {
        let wake = engine
            .next_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = ike.recv_from(&mut buf) => match r {
                Ok((n, from)) => engine.handle_datagram(Instant::now(), IKE_PORT, from, &buf[..n]),
                Err(e) => log::warn!("ikev2: recv: {e}"),
            },
            r = natt.recv_from(&mut buf2) => match r {
                Ok((n, from)) => engine.handle_datagram(Instant::now(), NAT_T_PORT, from, &buf2[..n]),
                Err(e) => log::warn!("ikev2: recv: {e}"),
            },
            c = commands.recv() => {
                let now = Instant::now();
                match c {
                    None | Some(Command::Stop) => return engine,
                    Some(Command::AddProfile(p)) => engine.add_profile(*p),
                    Some(Command::RemoveProfile(name)) => {
                        engine.remove_profile(&name);
                    }
                    Some(Command::IkeSas(tx)) => {
                        let _ = tx.send(engine.ike_sas());
                    }
                    Some(Command::Initiate(name)) => {
                        if let Err(e) = engine.initiate(now, &name) {
                            log::warn!("ikev2: initiate {name}: {e}");
                        }
                    }
                    Some(Command::RekeyChild(spi)) => { engine.rekey_child(spi); }
                    Some(Command::DeleteChild(spi)) => { engine.delete_child(spi); }
                    Some(Command::RekeyIke(name)) => { engine.rekey_ike(&name); }
                    Some(Command::DeleteIke(name)) => { engine.delete_ike(&name); }
                    Some(Command::Children(name, tx)) => { let _ = tx.send(engine.children(&name)); }
                    Some(Command::Counters(tx)) => { let _ = tx.send(engine.counters.clone()); }
                }
                // Queued work starts on the next timer pass.
                engine.handle_timeout(now);
            },
            _ = tokio::time::sleep_until(wake.into()) => engine.handle_timeout(Instant::now()),
        }
        flush(&ike, &natt, &mut engine, sink).await;
    }
}
