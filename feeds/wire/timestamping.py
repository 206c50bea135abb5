"""Kernel and NIC receive timestamps (Linux SO_TIMESTAMPING), and PTP clocks.

A socket asks the kernel to stamp each datagram as it arrives: in software
when the packet enters the stack, and in hardware when the NIC stamps it
(the NIC must also be told to, via the SIOCSHWTSTAMP ioctl, which needs
CAP_NET_ADMIN). The stamps come back as a control message with each
`recvmsg`: three timespecs, [0] software, [1] unused, [2] raw hardware.

Hardware stamps are in the NIC's PTP hardware clock (PHC), not the host's
CLOCK_REALTIME, unless phc2sys keeps them together; `PtpClock` reads a PHC
(its clock id comes from the device's fd) so a feed can compare against it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import time
from dataclasses import dataclass

# linux/net_tstamp.h and asm-generic/socket.h (x86-64 and arm64 share them)
SO_TIMESTAMPING = 37  # SO_TIMESTAMPING_OLD: timespecs with 64-bit fields on 64-bit hosts
SCM_TIMESTAMPING = SO_TIMESTAMPING
SOF_TIMESTAMPING_RX_HARDWARE = 1 << 2
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4  # report software stamps
SOF_TIMESTAMPING_RAW_HARDWARE = 1 << 6  # report raw hardware stamps
SIOCGHWTSTAMP = 0x89B1
SIOCSHWTSTAMP = 0x89B0
HWTSTAMP_FILTER_NONE = 0
HWTSTAMP_FILTER_ALL = 1
HWTSTAMP_TX_OFF = 0

_TIMESPECS = struct.Struct("=6q")  # struct scm_timestamping: 3 x (tv_sec, tv_nsec)
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPECS.size)


def enable_rx_timestamps(sock: socket.socket, hardware: bool) -> int:
    """Ask for software (and, if `hardware`, raw hardware) RX stamps; returns the flags."""
    flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
    if hardware:
        flags |= SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
    return flags


def rx_stamps(ancdata: list[tuple[int, int, bytes]]) -> tuple[int, int]:
    """(software_ns, hardware_ns) from `recvmsg` control messages; 0 where absent."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(data) >= _TIMESPECS.size:
            s0, n0, _, _, s2, n2 = _TIMESPECS.unpack_from(data)
            return s0 * 1_000_000_000 + n0, s2 * 1_000_000_000 + n2
    return 0, 0


@dataclass(frozen=True)
class HwConfig:
    """An interface's hardware timestamping config, or why it has none."""

    ifname: str
    granted: bool  # the NIC stamps received packets
    rx_filter: int | None
    reason: str  # empty when granted


def _hwtstamp_ioctl(sock: socket.socket, ifname: str, request: int, rx_filter: int) -> int:
    # struct hwtstamp_config {int flags; int tx_type; int rx_filter;}, passed by
    # pointer inside struct ifreq {char name[16]; void *data; ...} (40 bytes).
    cfg = (ctypes.c_int * 3)(0, HWTSTAMP_TX_OFF, rx_filter)
    ifreq = struct.pack("16sP16x", ifname.encode()[:15], ctypes.addressof(cfg))
    fcntl.ioctl(sock.fileno(), request, ifreq)
    return cfg[2]


def hardware_config(sock: socket.socket, ifname: str, configure: bool = False) -> HwConfig:
    """Read `ifname`'s hwtstamp config (SIOCGHWTSTAMP); with `configure`, first ask
    the NIC to stamp all received packets (SIOCSHWTSTAMP, needs CAP_NET_ADMIN)."""
    if configure:
        try:
            _hwtstamp_ioctl(sock, ifname, SIOCSHWTSTAMP, HWTSTAMP_FILTER_ALL)
        except OSError as exc:
            return HwConfig(ifname, False, None, f"SIOCSHWTSTAMP failed: {os.strerror(exc.errno)}")
    try:
        rx_filter = _hwtstamp_ioctl(sock, ifname, SIOCGHWTSTAMP, 0)
    except OSError as exc:
        return HwConfig(ifname, False, None, f"SIOCGHWTSTAMP failed: {os.strerror(exc.errno)}")
    if rx_filter == HWTSTAMP_FILTER_NONE:
        return HwConfig(ifname, False, rx_filter, "the NIC's rx_filter is NONE")
    return HwConfig(ifname, True, rx_filter, "")


def fd_to_clockid(fd: int) -> int:
    """The dynamic POSIX clock id of an open PTP device (linux FD_TO_CLOCKID)."""
    return ((~fd) << 3) | 3


class PtpClock:
    """A PTP hardware clock (`/dev/ptpN`) as a `Clock`: `now_ns` reads the PHC.

    Use it as the clock hardware RX stamps are compared against; durations
    still come from CLOCK_MONOTONIC.
    """

    def __init__(self, device: str = "/dev/ptp0") -> None:
        try:
            self._fd = os.open(device, os.O_RDONLY)
        except OSError as exc:
            raise ValueError(f"PtpClock: cannot open {device!r}: {exc.strerror}") from None
        self.device = device
        self.clock_id = fd_to_clockid(self._fd)

    def now_ns(self) -> int:
        return time.clock_gettime_ns(self.clock_id)

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def close(self) -> None:
        os.close(self._fd)
