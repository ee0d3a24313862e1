"""The test control plane fails loudly and usefully, and gets past a port someone else took.

These start control planes of their own (the real binaries), not the shared session one.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.controlplane import launcher
from tests.controlplane.launcher import ControlPlane, ControlPlaneError

pytestmark = [pytest.mark.kube, pytest.mark.slow]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port that another process is already listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_an_api_server_that_dies_while_starting_fails_with_its_log_tail() -> None:
    plane = ControlPlane(extra_apiserver_args=["--no-such-flag=1"])

    with pytest.raises(ControlPlaneError) as caught:
        plane.start()

    message = str(caught.value)
    assert "kube-apiserver exited with code" in message
    assert "no-such-flag" in message
    plane.stop()


def test_a_port_taken_before_the_api_server_binds_it_is_retried_with_another(
    monkeypatch: pytest.MonkeyPatch, taken_port: int
) -> None:
    real_free_ports = launcher._free_ports
    handed_out: list[int] = []

    def first_apiserver_port_is_taken(count: int) -> list[int]:
        # etcd asks for two ports, kube-apiserver for one: hand the busy one to the first
        # kube-apiserver attempt only.
        first_single = count == 1 and taken_port not in handed_out
        ports = [taken_port] if first_single else real_free_ports(count)
        handed_out.extend(ports)
        return ports

    monkeypatch.setattr(launcher, "_free_ports", first_apiserver_port_is_taken)

    with ControlPlane() as plane:
        assert plane.server != f"https://127.0.0.1:{taken_port}"
        assert plane.kubectl("get", "namespace", "default", "-o", "name").stdout.strip() == (
            "namespace/default"
        )
    assert taken_port in handed_out
