//! TCP_QUICKACK on client sockets. Clients keep Nagle's algorithm on (the default of
//! rumqttc, paho, libmosquitto and MQTT.js): a small frame they send (a PUBACK, a command)
//! holds their next one until it is acknowledged, and Linux delays that ACK by up to 40 ms
//! when the broker has nothing to send at once. Asking for an immediate ACK after every
//! read takes that wait out of every small exchange. Linux leaves quick-ack mode by itself,
//! so it is set again after each read; elsewhere this does nothing.

use std::os::fd::RawFd;

/// Asks the kernel to acknowledge what was read on `fd` at once.
#[cfg(target_os = "linux")]
pub(crate) fn quickack(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call; the
    // option value is a c_int that outlives the call. A failure (not a TCP socket) is ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn quickack(_fd: RawFd) {}
