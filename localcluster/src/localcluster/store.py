"""In-memory object store: the single source of truth of the local cluster.

All methods are synchronous and must be called from the one asyncio loop that runs the server,
the controllers and the node agent, so no locking is needed. Objects handed out are deep copies.
Every change bumps one cluster-wide, monotonic resourceVersion and is published as a WatchEvent
to every subscriber queue and into a bounded history from which watches resume.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from localcluster import defaults, validation
from localcluster.errors import ApiError, already_exists, conflict, expired, not_found
from localcluster.kinds import KINDS, kind_for
from localcluster.selectors import field_matcher, label_matcher

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")
FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")

Key = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class WatchEvent:
    type: str
    resource: str
    object: dict[str, Any]
    # The object before a MODIFIED change, so watches can tell selector transitions.
    previous: dict[str, Any] | None = None

    @property
    def resource_version(self) -> int:
        return int(self.object["metadata"]["resourceVersion"])


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, history_size: int = 10000) -> None:
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {}
        self._by_uid: dict[str, tuple[str, Key]] = {}
        self._revision = 1
        self._history: deque[WatchEvent] = deque(maxlen=history_size)
        # Watches may resume from any revision >= this one.
        self._oldest_resumable = 1
        self._subscribers: set[asyncio.Queue[WatchEvent]] = set()
        self._event_keys: dict[tuple[str, str, str, str], Key] = {}
        # owner uid -> dependents, and the reverse, so GC never scans every object.
        self._dependents_of: dict[str, set[tuple[str, Key]]] = {}
        self._owners_of: dict[tuple[str, Key], set[str]] = {}
        self._name_counter = itertools.count()
        # Mutating and validating admission of creates (localcluster.admission.Admission).
        self.admission: Any = None
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create("namespaces", None, {"metadata": {"name": namespace}})

    # ----- reading -----------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._revision

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self._table(resource).get(self._key(resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def require(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.get(resource, namespace, name)
        if obj is None:
            kind = kind_for(resource)
            raise not_found(kind.group, resource, name)
        return obj

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Matching objects sorted by (namespace, name)."""
        return self.list_page(resource, namespace, label_selector, field_selector)[0]

    def list_page(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        after: Key | None = None,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """The matching objects after key `after`, at most `limit` of them, sorted as
        `list`; and how many match after `after` in all. Only the page is copied: a
        paged list of 10,000 pods copies each pod once, not once per page."""
        labels_match = label_matcher(label_selector)
        fields_match = field_matcher(resource, field_selector)
        table = self._table(resource)
        keys = [
            key
            for key in sorted(table)
            if (not namespace or key[0] == namespace)
            and (after is None or key > after)
            and labels_match(table[key])
            and fields_match(table[key])
        ]
        page = keys[:limit] if limit else keys
        return [copy.deepcopy(table[key]) for key in page], len(keys)

    def list_owned(
        self, resource: str, owner_uid: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of `resource` that name `owner_uid` among their owners, sorted as `list`,
        from the owner index: what the Job controller's pod indexer by controller UID gives
        it (kubernetes pkg/controller/job/job_controller.go, getPodsForJob through
        controller.FilterPodsByOwner), so a sync reads its Job's pods, not every pod."""
        labels_match = label_matcher(label_selector)
        table = self._table(resource)
        return [
            copy.deepcopy(table[key])
            for kind, key in self._dependents(owner_uid)
            if kind == resource and key in table and labels_match(table[key])
        ]

    def find_by_uid(self, uid: str) -> dict[str, Any] | None:
        location = self._by_uid.get(uid)
        if location is None:
            return None
        return copy.deepcopy(self._objects[location[0]][location[1]])

    # ----- writing -----------------------------------------------------------------------
    def create(
        self,
        resource: str,
        namespace: str | None,
        obj: dict[str, Any],
        warnings: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create an object through admission (when set); its warnings go to `warnings`."""
        kind = kind_for(resource)
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        if kind.namespaced:
            namespace = namespace or metadata.get("namespace") or "default"
            if metadata.get("namespace") not in (None, "", namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            metadata["namespace"] = namespace
            ns_obj = self._table("namespaces").get(("", namespace))
            if ns_obj is None:
                raise not_found("", "namespaces", namespace)
            if ns_obj.get("status", {}).get("phase") == "Terminating":
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{resource} "{metadata.get("name") or metadata.get("generateName")}" is '
                    f"forbidden: unable to create new content in namespace {namespace} because "
                    "it is being terminated",
                )
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = self._generate_name(resource, namespace, metadata["generateName"])
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        defaults.apply(resource, obj)
        if self.admission is not None:
            self.admission.mutate(resource, namespace, obj)
        validation.validate(resource, obj)
        if self.admission is not None:
            found = self.admission.validate(resource, namespace, obj)
            if warnings is not None:
                warnings.extend(found)
        key = self._key(resource, namespace, metadata["name"])
        if key in self._table(resource):
            raise already_exists(kind.group, resource, metadata["name"])
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            metadata.pop(field, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        if resource == "jobs":
            metadata["generation"] = 1
        defaults.after_identity(resource, obj)
        self._store(resource, key, obj, ADDED)
        self._by_uid[metadata["uid"]] = (resource, key)
        return copy.deepcopy(obj)

    def replace(self, resource: str, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT semantics: optimistic concurrency on metadata.resourceVersion when given."""
        kind = kind_for(resource)
        name = obj.get("metadata", {}).get("name", "")
        key = self._key(resource, namespace, name)
        current = self._table(resource).get(key)
        if current is None:
            raise not_found(kind.group, resource, name)
        wanted_rv = obj.get("metadata", {}).get("resourceVersion")
        if wanted_rv and str(wanted_rv) != current["metadata"]["resourceVersion"]:
            raise conflict(kind.group, resource, name)
        return self._update(resource, key, current, copy.deepcopy(obj))

    def mutate(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        fn: Callable[[dict[str, Any]], Any],
    ) -> dict[str, Any]:
        """Apply fn to a deep copy of the object and store the result (no-op if unchanged)."""
        kind = kind_for(resource)
        key = self._key(resource, namespace, name)
        current = self._table(resource).get(key)
        if current is None:
            raise not_found(kind.group, resource, name)
        changed = copy.deepcopy(current)
        fn(changed)
        return self._update(resource, key, current, changed)

    def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        propagation: str = "Background",
        preconditions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Delete an object; returns its last state (with deletionTimestamp if it lingers).

        Foreground: the object gets a deletionTimestamp and the foregroundDeletion finalizer,
        its dependents are deleted, then it goes. Background: it goes, then its dependents
        whose owners are all gone. Orphan: dependents lose their owner reference first.
        """
        kind = kind_for(resource)
        if propagation not in PROPAGATION_POLICIES:
            raise ApiError(
                422,
                "Invalid",
                f"DeleteOptions.propagationPolicy: Unsupported value: {propagation!r}: supported "
                'values: "Foreground", "Background", "Orphan"',
            )
        if resource == "namespaces" and name in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        key = self._key(resource, namespace, name)
        current = self._table(resource).get(key)
        if current is None:
            raise not_found(kind.group, resource, name)
        if preconditions:
            for field in ("uid", "resourceVersion"):
                if preconditions.get(field) and preconditions[field] != current["metadata"][field]:
                    raise ApiError(
                        409,
                        "Conflict",
                        f"Precondition failed: {field} in precondition: {preconditions[field]}, "
                        f"{field} in object meta: {current['metadata'][field]}",
                    )
        uid = current["metadata"]["uid"]
        if propagation == "Orphan":

            def drop_reference(dependent: dict[str, Any]) -> None:
                refs = dependent["metadata"].get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != uid]
                if kept:
                    dependent["metadata"]["ownerReferences"] = kept
                else:
                    dependent["metadata"].pop("ownerReferences", None)

            for dep_resource, dep_key in self._dependents(uid):
                self.mutate(dep_resource, dep_key[0], dep_key[1], drop_reference)
        marked = self._mark_deleting(resource, key, propagation)
        if resource == "namespaces":
            namespaced = [k.resource for k in KINDS.values() if k.namespaced]
            for other in namespaced:
                for other_key in [k for k in self._table(other) if k[0] == name]:
                    if other_key in self._table(other):
                        self.delete(other, other_key[0], other_key[1], "Background")
        if propagation == "Foreground":
            for dep_resource, dep_key in self._dependents(uid):
                if dep_key in self._table(dep_resource):
                    self.delete(dep_resource, dep_key[0], dep_key[1], "Foreground")
            self._drop_finalizer(resource, key, FOREGROUND_FINALIZER)
        self._finalize_if_done(resource, key)
        if key not in self._table(resource):
            self._collect_garbage(uid)
        return marked

    def record_event(
        self,
        involved: dict[str, Any],
        reason: str,
        message: str,
        type: str = "Normal",
        component: str = "localcluster",
    ) -> dict[str, Any]:
        """Create (or bump the count of) a core/v1 Event about an object."""
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        identity = (meta.get("uid", ""), reason, message, component)
        now = now_rfc3339()
        existing_key = self._event_keys.get(identity)
        if existing_key and existing_key in self._table("events"):

            def bump(event: dict[str, Any]) -> None:
                event["count"] = event.get("count", 1) + 1
                event["lastTimestamp"] = now

            return self.mutate("events", existing_key[0], existing_key[1], bump)
        event = {
            "metadata": {"name": f"{meta.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": {
                "kind": involved.get("kind", ""),
                "apiVersion": involved.get("apiVersion", ""),
                "namespace": meta.get("namespace", ""),
                "name": meta.get("name", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": None,
            "count": 1,
        }
        created = self.create("events", namespace, event)
        self._event_keys[identity] = (namespace, created["metadata"]["name"])
        return created

    # ----- watching ----------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[WatchEvent]:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[WatchEvent]) -> None:
        self._subscribers.discard(queue)

    def events_since(self, resource_version: int) -> list[WatchEvent]:
        """Events after a revision; 410 Expired when that revision is no longer retained."""
        oldest = self._oldest_resumable
        if self._history and len(self._history) == self._history.maxlen:
            oldest = max(oldest, self._history[0].resource_version)
        if resource_version < oldest - 1:
            raise expired(f"too old resource version: {resource_version} ({oldest - 1})")
        return [e for e in self._history if e.resource_version > resource_version]

    def compact(self) -> int:
        """Forget the watch history, like etcd compaction: older revisions now give 410."""
        self._history.clear()
        self._oldest_resumable = self._revision + 1
        return self._revision

    # ----- internals ---------------------------------------------------------------------
    def _table(self, resource: str) -> dict[Key, dict[str, Any]]:
        kind_for(resource)
        return self._objects.setdefault(resource, {})

    def _key(self, resource: str, namespace: str | None, name: str) -> Key:
        return ((namespace or "") if kind_for(resource).namespaced else "", name)

    def _generate_name(self, resource: str, namespace: str | None, prefix: str) -> str:
        alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the real server's generator alphabet
        table = self._table(resource)
        while True:
            suffix = "".join(alphabet[b % len(alphabet)] for b in uuid.uuid4().bytes[:5])
            name = f"{prefix[:58]}{suffix}"
            if self._key(resource, namespace, name) not in table:
                return name

    def _store(self, resource: str, key: Key, obj: dict[str, Any], event_type: str) -> None:
        previous = self._objects[resource].get(key) if event_type == MODIFIED else None
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        if event_type == DELETED:
            del self._objects[resource][key]
            self._by_uid.pop(obj["metadata"]["uid"], None)
            self._index_owners(resource, key, [])
        else:
            self._objects[resource][key] = obj
            self._index_owners(resource, key, obj["metadata"].get("ownerReferences") or [])
        self._publish(WatchEvent(event_type, resource, copy.deepcopy(obj), previous))

    def _publish(self, event: WatchEvent) -> None:
        self._history.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    def _update(
        self, resource: str, key: Key, current: dict[str, Any], changed: dict[str, Any]
    ) -> dict[str, Any]:
        kind = kind_for(resource)
        metadata = changed.setdefault("metadata", {})
        old_meta = current["metadata"]
        for field in ("uid", "creationTimestamp", "namespace", "name", "resourceVersion"):
            if field in old_meta:
                metadata[field] = old_meta[field]
            else:
                metadata.pop(field, None)
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if field in old_meta:
                metadata[field] = old_meta[field]
            else:
                metadata.pop(field, None)
        changed["apiVersion"] = kind.api_version
        changed["kind"] = kind.kind
        defaults.apply(resource, changed)
        if "generation" in old_meta:
            metadata["generation"] = old_meta["generation"]
            if changed.get("spec") != current.get("spec"):
                metadata["generation"] += 1
        if changed == current:
            return copy.deepcopy(current)
        validation.validate(resource, changed)
        validation.validate_update(resource, current, changed)
        self._store(resource, key, changed, MODIFIED)
        self._finalize_if_done(resource, key)
        return copy.deepcopy(changed)

    def _mark_deleting(self, resource: str, key: Key, propagation: str) -> dict[str, Any]:
        current = self._objects[resource][key]
        marked = copy.deepcopy(current)
        metadata = marked["metadata"]
        metadata.setdefault("deletionTimestamp", now_rfc3339())
        metadata.setdefault("deletionGracePeriodSeconds", 0)
        finalizers = list(metadata.get("finalizers") or [])
        if propagation == "Foreground" and self._dependents(metadata["uid"]):
            finalizers.append(FOREGROUND_FINALIZER)
        if finalizers:
            metadata["finalizers"] = finalizers
        if resource == "namespaces":
            marked.setdefault("status", {})["phase"] = "Terminating"
        lingers = bool(finalizers) or resource == "namespaces"
        if lingers:
            self._store(resource, key, marked, MODIFIED)
        else:
            self._objects[resource][key] = marked
        return copy.deepcopy(marked)

    def _drop_finalizer(self, resource: str, key: Key, finalizer: str) -> None:
        current = self._table(resource).get(key)
        if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
            return
        changed = copy.deepcopy(current)
        changed["metadata"]["finalizers"] = [
            f for f in changed["metadata"]["finalizers"] if f != finalizer
        ]
        if not changed["metadata"]["finalizers"]:
            del changed["metadata"]["finalizers"]
        self._store(resource, key, changed, MODIFIED)

    def _finalize_if_done(self, resource: str, key: Key) -> None:
        current = self._table(resource).get(key)
        if current is None or "deletionTimestamp" not in current["metadata"]:
            return
        if current["metadata"].get("finalizers"):
            return
        self._store(resource, key, copy.deepcopy(current), DELETED)
        self._collect_garbage(current["metadata"]["uid"])

    def _index_owners(self, resource: str, key: Key, refs: list[dict[str, Any]]) -> None:
        location = (resource, key)
        owners = {str(ref.get("uid")) for ref in refs if ref.get("uid")}
        for stale in self._owners_of.get(location, set()) - owners:
            dependents = self._dependents_of.get(stale)
            if dependents is not None:
                dependents.discard(location)
                if not dependents:
                    del self._dependents_of[stale]
        for owner in owners:
            self._dependents_of.setdefault(owner, set()).add(location)
        if owners:
            self._owners_of[location] = owners
        else:
            self._owners_of.pop(location, None)

    def _dependents(self, owner_uid: str) -> list[tuple[str, Key]]:
        return sorted(self._dependents_of.get(owner_uid, ()))

    def _collect_garbage(self, owner_uid: str) -> int:
        """Delete dependents of a vanished owner whose owners are now all gone; return how
        many were deleted."""
        deleted = 0
        for resource, key in self._dependents(owner_uid):
            obj = self._table(resource).get(key)
            if obj is None or "deletionTimestamp" in obj["metadata"]:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            if all(ref.get("uid") not in self._by_uid for ref in refs):
                self.delete(resource, key[0], key[1], "Background")
                deleted += 1
        return deleted

    def collect_orphans(self) -> int:
        """Delete objects whose owner references all point at objects that do not exist."""
        deleted = 0
        for owner_uid in [uid for uid in self._dependents_of if uid not in self._by_uid]:
            deleted += self._collect_garbage(owner_uid)
        return deleted
