"""Nothing listens beyond loopback by default: the checks of listening sockets.

`tests/integration/test_up.py::test_every_listener_of_a_running_up_is_on_loopback` applies them to
every listening socket of a running `tickcast up` (its whole process tree and the broker it
started), in the one `up` run that module shares between its checks.
"""
from __future__ import annotations

import ipaddress

import psutil


def loopback(ip: str) -> bool:
    """127.0.0.1 or ::1, also as a JVM's IPv4-mapped IPv6 socket (::ffff:127.0.0.1); never 0.0.0.0 or ::."""
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return a.is_loopback


def listening(pids: set[int]) -> list[tuple[int, str, int, list[str]]]:
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            try:
                cmd = psutil.Process(c.pid).cmdline()[:3]
            except psutil.NoSuchProcess:
                cmd = []
            out.append((c.pid, c.laddr.ip, c.laddr.port, cmd))
    return out


def test_the_loopback_check_refuses_wildcards():
    assert loopback("127.0.0.1") and loopback("::1") and loopback("::ffff:127.0.0.1")
    assert not any(map(loopback, ("0.0.0.0", "::", "::ffff:0.0.0.0", "192.168.1.5", "fe80::1")))


def test_the_spark_ui_has_no_kill_links_and_binds_loopback(base_settings):
    from tickcast.spark import conf

    c = conf(base_settings)
    assert c["spark.ui.killEnabled"] == "false"
    assert c["spark.driver.bindAddress"] == "127.0.0.1"
