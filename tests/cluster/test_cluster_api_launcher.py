"""The launcher and the pytest fixture's detection of an existing cluster behind KUBECONFIG."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from localcluster.launcher import start_cluster
from localcluster.pytest_fixtures import _existing_cluster

pytestmark = pytest.mark.cluster  # every test here starts or reaches a cluster


def test_kubeconfig_of_a_local_cluster_gets_control(api_cluster) -> None:
    handle = _existing_cluster(str(api_cluster.kubeconfig))
    assert handle.control is not None
    assert handle.control.info()["url"] == api_cluster.url
    assert handle.url == api_cluster.url


def test_kubeconfig_is_private_and_token_checked(api_cluster) -> None:
    mode = api_cluster.kubeconfig.stat().st_mode & 0o777
    assert mode == 0o600
    config = json.loads(api_cluster.kubeconfig.read_text())
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"].startswith("https://127.0.0.1:")
    assert config["current-context"] == "localcluster"
    info = json.loads((api_cluster.state_dir / "cluster.json").read_text())
    assert info["url"] == api_cluster.url and info["pid"] == api_cluster.process.pid


def test_bad_nodes_file_fails_startup_with_a_clear_error(tmp_path) -> None:
    nodes = tmp_path / "nodes.json"
    nodes.write_text(json.dumps([{"name": "n1", "cpus": 4}]))
    with pytest.raises(RuntimeError, match=r"unknown keys \['cpus'\]"):
        start_cluster(tmp_path / "state", agent=False, extra_args=["--nodes", str(nodes)])


def test_server_stops_cleanly_on_sigterm(tmp_path) -> None:
    cluster = start_cluster(tmp_path, agent=False)
    api = cluster.api_client()
    try:
        assert client.CoreV1Api(api).read_namespace("default").status.phase == "Active"
    finally:
        api.close()
        cluster.stop()
    assert cluster.process.returncode == 0
    assert not (tmp_path / "cluster.json").exists()


def test_kubeconfig_of_another_server_gets_no_control(tmp_path) -> None:
    """A server without /_localcluster/ (a real cluster) yields control=None."""
    import http.server
    import threading

    class NotLocal(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotLocal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    url = f"http://127.0.0.1:{server.server_address[1]}"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "real", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "real", "context": {"cluster": "real", "user": "u"}}],
                "current-context": "real",
            }
        )
    )
    try:
        handle = _existing_cluster(str(kubeconfig))
    finally:
        server.shutdown()
        thread.join()
    assert handle.control is None and handle.url == url
