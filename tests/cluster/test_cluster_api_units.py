"""Direct tests of the pure pieces: patch flavours, quantity grammar, selectors."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from localcluster.errors import ApiError
from localcluster.observer import Observation
from localcluster.patch import json_patch, merge_patch, strategic_merge
from localcluster.quantity import parse_quantity
from localcluster.selectors import field_matcher, label_matcher


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    result = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "remove", "path": "/a/b/1"},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "test", "path": "/e~1f", "value": "y"},
        ],
    )
    assert result == {"a": {"b": [0, 2, 3]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}, "the input must not change"
    with pytest.raises(ApiError) as caught:
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    assert caught.value.status == 422


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    assert merge_patch(
        {"l": [1, 2], "k": 1, "m": {"x": 1}}, {"l": [3], "k": None, "m": {"y": 2}}
    ) == {
        "l": [3],
        "m": {"x": 1, "y": 2},
    }


def test_strategic_merge_merges_keyed_lists() -> None:
    pod = {
        "spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
            "tolerations": [{"key": "x"}],
        },
        "metadata": {"finalizers": ["f1"]},
    }
    patched = strategic_merge(
        pod,
        {
            "spec": {
                "containers": [{"name": "b", "image": "2"}, {"name": "a", "$patch": "delete"}],
                "tolerations": [{"key": "y"}],
            },
            "metadata": {"finalizers": ["f2"]},
        },
    )
    assert patched["spec"]["containers"] == [{"name": "b", "image": "2"}]
    assert patched["spec"]["tolerations"] == [{"key": "y"}]  # no merge key: replaced
    assert patched["metadata"]["finalizers"] == ["f1", "f2"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("2e3", Decimal(2000)),
        ("1E-3", Decimal("0.001")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+1M", Decimal(10**6)),
        (2, Decimal(2)),
    ],
)
def test_quantities(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1x", "1.2.3", "Gi", "1 Gi", " 1", "1KI", "1e", "--1", True])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_selector_matchers() -> None:
    obj = {
        "metadata": {"name": "n", "labels": {"a": "1", "b": "2"}},
        "status": {"phase": "Running"},
    }
    assert label_matcher("a in (1,3), b!=3, !c")(obj)
    assert not label_matcher("a notin (1)")(obj)
    assert label_matcher("c notin (1)")(obj), "notin matches objects without the key"
    assert field_matcher("pods", "status.phase=Running,metadata.name!=m")(obj)
    assert not field_matcher("pods", "spec.nodeName=x")(obj)


@pytest.mark.parametrize(
    "read",
    [
        lambda seen: seen.of_kind("Job"),
        lambda seen: seen.latest(),
        lambda seen: seen.run_ids,
        lambda seen: list(seen.texts_outside_secrets()),
        lambda seen: seen.last_completion(),
        lambda seen: seen.run_seconds(),
    ],
    ids=["of_kind", "latest", "run_ids", "texts", "last_completion", "run_seconds"],
)
def test_an_observation_is_read_under_the_lock_its_observer_records_under(read) -> None:
    """A test reads what the observer saw while the observer's threads still record
    (the load scenario counts Jobs as they are created); a reader that iterated without
    the lock died with 'dictionary changed size during iteration' at 2,000 Jobs."""
    seen = Observation()
    job = {"metadata": {"name": "j", "labels": {}}}
    seen.objects[("Job", "j")] = job
    seen.versions[("Job", "j", "1")] = job
    seen.finished_at["p"] = seen.running_at["p"] = 1.0
    done = threading.Event()
    with seen.lock:  # as the observer does while it records an object
        reader = threading.Thread(target=lambda: (read(seen), done.set()))
        reader.start()
        assert not done.wait(0.2), "the reader went on while the observer was recording"
    reader.join(5)
    assert done.is_set()
