"""Fixtures shared by every test come from the local cluster's pytest plugin (the
``localcluster`` package's ``pytest11`` entry point): ``azurite``, ``container``,
``local_cluster`` and ``kube_api``. Both services run on 127.0.0.1 only, on free ports, with
their state in temporary folders."""
