"""Authentication (the admin token, ServiceAccount tokens) and RBAC authorization.

Sources:
- request attributes (verb list/watch/deletecollection, namespace of a namespaces request):
  staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go;
- rule matching (``*``, ``resource/subresource``, ``*/subresource``, resourceNames):
  pkg/apis/rbac/v1/evaluation_helpers.go; subjects of a ServiceAccount and its groups:
  staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go;
- the denial: staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
  forbiddenMessage (``User %q cannot %s resource %q in API group %q in the namespace %q``,
  ``... at the cluster scope``, ``User %q cannot %s path %q``) wrapped in errors.NewForbidden;
- SelfSubjectAccessReview: pkg/registry/authorization/selfsubjectaccessreview/rest.go;
- impersonation: staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go;
- TokenRequest: pkg/registry/core/serviceaccount/storage/token.go (expirationSeconds defaults
  to 3600); legacy token Secrets: pkg/controller/serviceaccount/tokens_controller.go (data
  keys token, ca.crt, namespace; annotation kubernetes.io/service-account.uid).
"""

from __future__ import annotations

import base64
import hmac
import secrets as token_source
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcluster.admission import forbidden
from localcluster.errors import ApiError, bad_request

if TYPE_CHECKING:
    from aiohttp import web

    from localcluster.store import Store

ADMIN_USER = "localcluster-admin"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
RBAC_GROUP = "rbac.authorization.k8s.io"
DEFAULT_TOKEN_SECONDS = 3600


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def superuser(self) -> bool:
        return "system:masters" in self.groups


@dataclass
class Attributes:
    user: User
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # non-resource requests only

    @property
    def resource_request(self) -> bool:
        return bool(self.resource)


def service_account_user(namespace: str, name: str, uid: str = "") -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        uid,
    )


def _matches(values: list[str] | None, wanted: str) -> bool:
    values = values or []
    return "*" in values or wanted in values


def _resource_matches(rule: dict[str, Any], attrs: Attributes) -> bool:
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    for resource in rule.get("resources") or []:
        if resource in ("*", combined):
            return True
        if attrs.subresource and resource == f"*/{attrs.subresource}":
            return True
    return False


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    if not _matches(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        urls = rule.get("nonResourceURLs") or []
        return any(
            u == "*" or u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1]))
            for u in urls
        )
    if not _matches(rule.get("apiGroups"), attrs.group) or not _resource_matches(rule, attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def forbidden_message(attrs: Attributes) -> str:
    user = attrs.user.name
    if not attrs.resource_request:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group '
        f'"{attrs.group}" {where}'
    )


def default_cluster_roles() -> list[dict[str, Any]]:
    """The bootstrap roles a user needs before any binding of its own: discovery and
    self-reviews for every authenticated user (bootstrappolicy/policy.go), and cluster-admin."""
    meta = {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}
    return [
        {
            "metadata": {"name": "cluster-admin", **meta},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ],
        },
        {
            "metadata": {"name": "system:discovery", **meta},
            "rules": [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "metadata": {"name": "system:basic-user", **meta},
            "rules": [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                }
            ],
        },
    ]


def seed(store: Store) -> None:
    for role in default_cluster_roles():
        store.create("clusterroles", None, role)
        name = role["metadata"]["name"]
        if name == "cluster-admin":
            subjects = [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:masters"}]
        else:
            subjects = [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:authenticated"}]
        store.create(
            "clusterrolebindings",
            None,
            {
                "metadata": {"name": name, "labels": role["metadata"]["labels"]},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
                "subjects": subjects,
            },
        )


@dataclass
class _IssuedToken:
    namespace: str
    service_account: str
    uid: str
    expires: datetime | None  # None: a legacy Secret token, valid while the Secret exists
    secret: str | None = None


@dataclass
class Rbac:
    """Authenticates bearer tokens and authorizes requests against the store's RBAC objects."""

    store: Store
    admin_token: str
    ca_file: Path | None = None
    _tokens: dict[str, _IssuedToken] = field(default_factory=dict)

    # ----- authentication ------------------------------------------------------------------
    def authenticate(self, presented: str) -> User | None:
        if not presented:
            return None
        if hmac.compare_digest(presented.encode(), self.admin_token.encode()):
            return User(ADMIN_USER, ("system:masters", "system:authenticated"))
        issued = self._tokens.get(presented)
        if issued is None:
            return None
        if issued.expires is not None and datetime.now(UTC) >= issued.expires:
            del self._tokens[presented]
            return None
        account = self.store.get("serviceaccounts", issued.namespace, issued.service_account)
        if account is None or account["metadata"]["uid"] != issued.uid:
            return None
        if issued.secret is not None:
            secret = self.store.get("secrets", issued.namespace, issued.secret)
            token = ((secret or {}).get("data") or {}).get("token", "")
            if base64.b64decode(token or b"").decode() != presented:
                return None
        return service_account_user(issued.namespace, issued.service_account, issued.uid)

    def impersonate(self, user: User, headers: Any) -> User:
        """Impersonate-User / Impersonate-Group (kubectl --as, --as-group), as the
        apiserver's WithImpersonation filter does; only an identity allowed to
        `impersonate` (here: system:masters) may."""
        wanted = headers.get("Impersonate-User")
        if not wanted:
            return user
        target = "serviceaccounts" if wanted.startswith("system:serviceaccount:") else "users"
        if not user.superuser:
            attrs = Attributes(user, "impersonate", resource=target, name=wanted)
            raise forbidden(target, "", wanted, forbidden_message(attrs))
        groups = tuple(headers.getall("Impersonate-Group", []))
        parts = wanted.split(":")
        if target == "serviceaccounts" and len(parts) == 4:
            account = service_account_user(parts[2], parts[3])
            return User(account.name, tuple(dict.fromkeys(account.groups + groups)))
        return User(wanted, tuple(dict.fromkeys((*groups, "system:authenticated"))))

    def _new_token(self) -> str:
        return token_source.token_urlsafe(32)

    def token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """POST serviceaccounts/NAME/token: an authentication.k8s.io/v1 TokenRequest."""
        account = self.store.require("serviceaccounts", namespace, name)
        spec = (body or {}).get("spec") or {}
        seconds = int(spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
        if seconds < 600:
            raise ApiError(
                422,
                "Invalid",
                f'TokenRequest.authentication.k8s.io "{name}" is invalid: spec.expirationSeconds: '
                "Invalid value: "
                f"{seconds}: may not specify a duration less than 10 minutes",
            )
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
        token = self._new_token()
        self._tokens[token] = _IssuedToken(namespace, name, account["metadata"]["uid"], expires)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {
                "audiences": spec.get("audiences") or ["https://kubernetes.default.svc"],
                "expirationSeconds": seconds,
                "boundObjectRef": spec.get("boundObjectRef"),
            },
            "status": {
                "token": token,
                "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        }

    def fill_token_secret(self, namespace: str, secret: dict[str, Any]) -> None:
        """The token controller's work on a new kubernetes.io/service-account-token Secret."""
        if secret.get("type") != SA_TOKEN_TYPE:
            return
        annotations = secret.setdefault("metadata", {}).setdefault("annotations", {})
        account_name = annotations.get(SA_NAME_ANNOTATION)
        if not account_name:
            raise ApiError(
                422,
                "Invalid",
                f'Secret "{secret["metadata"].get("name", "")}" is invalid: '
                f"metadata.annotations[{SA_NAME_ANNOTATION}]: Required value",
            )
        account = self.store.get("serviceaccounts", namespace, account_name)
        if account is None:
            return  # the real controller deletes such a Secret; it authenticates nobody
        token = self._new_token()
        annotations[SA_UID_ANNOTATION] = account["metadata"]["uid"]
        data = secret.setdefault("data", {}) or {}
        secret["data"] = data
        data["token"] = base64.b64encode(token.encode()).decode()
        data["namespace"] = base64.b64encode(namespace.encode()).decode()
        if self.ca_file is not None and self.ca_file.exists():
            data["ca.crt"] = base64.b64encode(self.ca_file.read_bytes()).decode()
        self._tokens[token] = _IssuedToken(
            namespace,
            account_name,
            account["metadata"]["uid"],
            None,
            secret["metadata"].get("name"),
        )

    # ----- authorization -------------------------------------------------------------------
    def _bound_rules(self, attrs: Attributes) -> list[dict[str, Any]]:
        user = attrs.user
        rules: list[dict[str, Any]] = []
        bindings = [(b, None) for b in self.store.list("clusterrolebindings")]
        if attrs.namespace:
            bindings += [
                (b, attrs.namespace) for b in self.store.list("rolebindings", attrs.namespace)
            ]
        for binding, namespace in bindings:
            if not any(
                self._subject_matches(s, user, namespace) for s in binding.get("subjects") or []
            ):
                continue
            ref = binding.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                role = self.store.get("clusterroles", None, ref.get("name", ""))
            elif ref.get("kind") == "Role" and namespace:
                role = self.store.get("roles", namespace, ref.get("name", ""))
            else:
                role = None
            if role is not None:
                rules.extend(role.get("rules") or [])
        return rules

    @staticmethod
    def _subject_matches(subject: dict[str, Any], user: User, namespace: str | None) -> bool:
        kind = subject.get("kind")
        if kind == "User":
            return subject.get("name") == user.name
        if kind == "Group":
            return subject.get("name") in user.groups
        if kind == "ServiceAccount":
            sa_namespace = subject.get("namespace") or namespace or ""
            return user.name == f"system:serviceaccount:{sa_namespace}:{subject.get('name')}"
        return False

    def allowed(self, attrs: Attributes) -> bool:
        if attrs.user.superuser:
            return True
        return any(rule_allows(rule, attrs) for rule in self._bound_rules(attrs))

    def authorize(self, attrs: Attributes) -> None:
        if not self.allowed(attrs):
            message = forbidden_message(attrs)
            if not attrs.resource_request:
                raise ApiError(403, "Forbidden", f"forbidden: {message}", {})
            raise forbidden(attrs.resource, attrs.group, attrs.name, message)

    # ----- SelfSubjectAccessReview ---------------------------------------------------------
    def review(self, request: web.Request, body: Any) -> dict[str, Any]:
        user: User = request["user"]
        spec = (body or {}).get("spec") or {}
        resource = spec.get("resourceAttributes")
        non_resource = spec.get("nonResourceAttributes")
        if resource:
            attrs = Attributes(
                user,
                resource.get("verb", ""),
                resource.get("group", ""),
                resource.get("resource", ""),
                resource.get("subresource", ""),
                resource.get("namespace", ""),
                resource.get("name", ""),
            )
        elif non_resource:
            attrs = Attributes(
                user, non_resource.get("verb", ""), path=non_resource.get("path", "")
            )
        else:
            raise ApiError(
                422,
                "Invalid",
                'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: '
                "spec.resourceAttributes: "
                'Invalid value: "null": exactly one of nonResourceAttributes or '
                "resourceAttributes must be specified",
            )
        status: dict[str, Any] = {"allowed": self.allowed(attrs)}
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }


def request_verb(method: str, has_name: bool, watch: bool) -> str:
    """requestinfo.go: the RBAC verb of an HTTP request on a resource."""
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "DELETE" and not has_name:
        return "deletecollection"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    if method not in verbs:
        raise bad_request(f"unsupported method {method}")
    return verbs[method]
