# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check recorded API requests against the RBAC rules in deploy/.

The API-server double (apiserver.py) records every request it answers at
GET /_double/requests as {"method", "path", "query", "status", "userAgent",
"watch", ...}; it does not authorize. This module does what kube-apiserver's
RequestInfoResolver and RBAC authorizer would do with each request:

  request_attributes(req)  -> Attributes (verb, apiGroup, resource,
                              subresource, namespace, name), or a
                              non-resource URL
  load_policy(paths, yaml2json) -> Policy (Roles, ClusterRoles, bindings)
  check_requests(requests, rbac_paths, service_account, ...) -> [Violation]
  unused_rules(requests, rbac_paths, service_account, ...) -> [str]

so that a test can prove that hull-operator and hull-node need no more than
the manifests grant (a request the rules do not allow is a violation), and
that the manifests grant no more than the programs use (a rule no request
matched is an over-privilege warning).

YAML is read with the yaml2json helper (tests/kube/yaml2json, one document
per call); files are split into documents at lines that are exactly "---".
Python standard library only.
"""

import json
import os
import re
import subprocess
from urllib.parse import parse_qs

# Verbs as the authorizer sees them.
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")

# RequestInfoFactory defaults (k8s.io/apiserver/pkg/endpoints/request).
API_PREFIXES = ("api", "apis")
GROUPLESS_PREFIXES = ("api",)
NAMESPACE_SUBRESOURCES = ("status", "finalize")

# Non-resource URLs every authenticated client may GET through the built-in
# ClusterRoles system:discovery, system:basic-user and
# system:public-info-viewer. Not in deploy/, but granted on every cluster.
BUILTIN_NONRESOURCE = ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/version",
                       "/version/", "/openapi", "/openapi/*")


class Attributes:
    """authorizer.Attributes of one request."""

    def __init__(self, verb, path, resource_request, api_group="", api_version="", resource="",
                 subresource="", namespace="", name=""):
        self.verb = verb
        self.path = path
        self.resource_request = resource_request
        self.api_group = api_group
        self.api_version = api_version
        self.resource = resource
        self.subresource = subresource
        self.namespace = namespace
        self.name = name

    def resource_string(self):
        r = self.resource + ("/" + self.subresource if self.subresource else "")
        return r if not self.api_group else "%s.%s" % (r, self.api_group)

    def __str__(self):
        if not self.resource_request:
            return "%s %s (non-resource URL)" % (self.verb, self.path)
        s = "%s %s" % (self.verb, self.resource_string())
        if self.name:
            s += " name=%s" % self.name
        s += " namespace=%s" % (self.namespace or "(cluster)")
        return s

    def __repr__(self):
        return "<Attributes %s>" % self

    def key(self):
        return (self.verb, self.api_group, self.resource, self.subresource, self.namespace, self.name,
                self.resource_request, self.path if not self.resource_request else "")


class Violation:
    """A request the rules do not allow."""

    def __init__(self, request, attributes, message):
        self.request = request
        self.attributes = attributes
        self.message = message

    def __str__(self):
        return self.message

    def __repr__(self):
        return "<Violation %s>" % self.message


def _bool_param(v):
    return v in ("1", "t", "T", "true", "TRUE", "True")


def request_attributes(req):
    """Maps one recorded request (method, path, query) onto the attributes
    kube-apiserver's RequestInfoFactory.NewRequestInfo() gives the
    authorizer: verb from the method (GET without a name is list, or watch
    with watch=true; DELETE without a name is deletecollection), the legacy
    /watch/ prefix, namespace from /namespaces/NS/, name and subresource
    from the path, and, for list and watch, the name from a
    fieldSelector metadata.name=NAME."""
    method = req.get("method", "GET").upper()
    path = req.get("path", "")
    query = req.get("query") or ""
    if "?" in path:
        path, query = path.split("?", 1)
    q = parse_qs(query, keep_blank_values=True)
    verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())

    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    if len(parts) < 1 or parts[0] not in API_PREFIXES:
        return Attributes(verb, path, False)
    prefix = parts[0]
    parts = parts[1:]
    group = ""
    if prefix not in GROUPLESS_PREFIXES:
        if len(parts) < 2:      # /apis, /apis/GROUP: discovery
            return Attributes(verb, path, False)
        group = parts[0]
        parts = parts[1:]
    if len(parts) < 2:          # /api/v1, /apis/GROUP/VERSION: discovery
        return Attributes(verb, path, False)
    version = parts[0]
    parts = parts[1:]

    if parts[0] == "watch":     # deprecated /api/v1/watch/...
        verb = "watch"
        parts = parts[1:]
        if not parts:
            return Attributes(verb, path, False)

    namespace = ""
    if parts[0] == "namespaces":
        if len(parts) > 1:
            namespace = parts[1]
            if len(parts) > 2 and parts[2] not in NAMESPACE_SUBRESOURCES:
                parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 else ""

    if not name and verb == "get":
        verb = "watch" if _bool_param((q.get("watch") or [""])[0]) else "list"
    if verb in ("list", "watch") and not name:
        for fs in q.get("fieldSelector", []):
            for term in fs.split(","):
                m = re.match(r"^\s*metadata\.name\s*(==|=)\s*([^,!=\s]+)\s*$", term)
                if m:
                    name = m.group(2)
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, path, True, group, version, resource, subresource, namespace, name)


# ---- policy -----------------------------------------------------------------

def split_documents(text):
    """YAML documents of a file: split at lines that are exactly '---'."""
    docs, cur = [], []
    for line in text.splitlines(keepends=True):
        if line.rstrip("\r\n") == "---":
            docs.append("".join(cur))
            cur = []
        else:
            cur.append(line)
    docs.append("".join(cur))
    return docs


def _yaml_to_json(text, yaml2json, where):
    if not re.search(r"(?m)^[^#\s]", text):
        return None     # only comments or blank
    r = subprocess.run([yaml2json, "-"], input=text.encode(), capture_output=True)
    if r.returncode != 0:
        raise ValueError("%s: %s" % (where, r.stderr.decode().strip()))
    return json.loads(r.stdout)


def default_yaml2json():
    env = os.environ.get("YAML2JSON")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in ("build/tests/kube/yaml2json",):
        p = os.path.join(here, "..", "..", cand)
        if os.access(p, os.X_OK):
            return p
    raise FileNotFoundError("no yaml2json: pass yaml2json= or set YAML2JSON")


def load_objects(paths, yaml2json=None):
    """All objects of the YAML (or JSON) files; a directory means its *.yaml
    and *.json files (not recursive)."""
    yaml2json = yaml2json or default_yaml2json()
    files = []
    for p in ([paths] if isinstance(paths, str) else paths):
        if os.path.isdir(p):
            files += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith((".yaml", ".yml", ".json")))
        else:
            files.append(p)
    objs = []
    for f in files:
        with open(f) as fh:
            text = fh.read()
        for i, doc in enumerate(split_documents(text)):
            o = _yaml_to_json(doc, yaml2json, "%s (document %d)" % (f, i + 1))
            if isinstance(o, dict):
                o.setdefault("_source", "%s#%d" % (os.path.basename(f), i + 1))
                objs.append(o)
            elif isinstance(o, list):
                objs += [x for x in o if isinstance(x, dict)]
    return objs


class Rule:
    def __init__(self, role, index, rule, namespace_scope):
        self.role = role                # "ClusterRole/x" or "Role/ns/x"
        self.index = index
        self.verbs = rule.get("verbs") or []
        self.api_groups = rule.get("apiGroups") or []
        self.resources = rule.get("resources") or []
        self.resource_names = rule.get("resourceNames") or []
        self.non_resource_urls = rule.get("nonResourceURLs") or []
        self.namespace_scope = namespace_scope  # None: every namespace and cluster scope

    def __str__(self):
        s = "%s rule %d: verbs %s" % (self.role, self.index, ",".join(self.verbs))
        if self.non_resource_urls:
            return s + " nonResourceURLs " + ",".join(self.non_resource_urls)
        s += " on %s in group(s) %s" % (",".join(self.resources), ",".join(repr(g) for g in self.api_groups))
        if self.resource_names:
            s += " named " + ",".join(self.resource_names)
        if self.namespace_scope is not None:
            s += " in namespace " + self.namespace_scope
        return s

    # rbac/v1 helpers (pkg/apis/rbac/v1/evaluation_helpers.go)
    def _verb(self, verb):
        return "*" in self.verbs or verb in self.verbs

    def _group(self, group):
        return "*" in self.api_groups or group in self.api_groups

    def _resource(self, resource, subresource):
        combined = resource + ("/" + subresource if subresource else "")
        for r in self.resources:
            if r == "*" or r == combined:
                return True
            if subresource and r == "*/" + subresource:
                return True
        return False

    def _name(self, name):
        return not self.resource_names or name in self.resource_names

    def _non_resource(self, path):
        for u in self.non_resource_urls:
            if u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])):
                return True
        return False

    def allows(self, a):
        if self.namespace_scope is not None and a.namespace != self.namespace_scope:
            return False
        if not a.resource_request:
            # nonResourceURLs only count in ClusterRoles bound cluster-wide.
            return self.namespace_scope is None and self._verb(a.verb) and self._non_resource(a.path)
        if self.non_resource_urls and not self.resources:
            return False
        return (self._verb(a.verb) and self._group(a.api_group) and self._resource(a.resource, a.subresource)
                and self._name(a.name))

    def grants(self):
        """Every (verb, group, resource) this rule spells out: the unit an
        over-privilege warning is about."""
        if self.non_resource_urls and not self.resources:
            return [(v, None, u) for v in self.verbs for u in self.non_resource_urls]
        return [(v, g, r) for v in self.verbs for g in self.api_groups for r in self.resources]

    def grant_matches(self, grant, a):
        """Whether request a (already allowed by this rule) used this grant."""
        verb, group, res = grant
        if not a.resource_request:
            return group is None and (verb in ("*", a.verb)) and (res == "*" or res == a.path or (
                res.endswith("*") and a.path.startswith(res[:-1])))
        if group is None:
            return False
        if verb not in ("*", a.verb) or group not in ("*", a.api_group):
            return False
        combined = a.resource + ("/" + a.subresource if a.subresource else "")
        return res in ("*", combined) or (a.subresource and res == "*/" + a.subresource)


def _subject_matches(subject, sa_ns, sa_name):
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        return subject.get("name") == sa_name and subject.get("namespace", "") == sa_ns
    if kind == "User":
        return subject.get("name") == "system:serviceaccount:%s:%s" % (sa_ns, sa_name)
    if kind == "Group":
        return subject.get("name") in ("system:serviceaccounts", "system:serviceaccounts:" + sa_ns,
                                       "system:authenticated")
    return False


def parse_service_account(sa):
    """'system:serviceaccount:NS:NAME', 'NS:NAME' or 'NS/NAME'."""
    if sa.startswith("system:serviceaccount:"):
        sa = sa[len("system:serviceaccount:"):]
    m = re.match(r"^([a-z0-9.-]+)[:/]([a-z0-9.-]+)$", sa)
    if not m:
        raise ValueError("service account %r: want NS:NAME or system:serviceaccount:NS:NAME" % sa)
    return m.group(1), m.group(2)


def _labels_match(selector, labels):
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def rules_for(objects, service_account):
    """The Rules that apply to the service account: ClusterRoles bound by
    ClusterRoleBindings (everywhere), ClusterRoles and Roles bound by
    RoleBindings (in the binding's namespace). Aggregated ClusterRoles get
    the rules of the ClusterRoles their selectors match."""
    sa_ns, sa_name = parse_service_account(service_account)
    croles = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ClusterRole"}
    roles = {(o["metadata"].get("namespace", "default"), o["metadata"]["name"]): o for o in objects
             if o.get("kind") == "Role"}

    def crole_rules(name):
        cr = croles.get(name)
        if not cr:
            return []
        rules = list(cr.get("rules") or [])
        agg = cr.get("aggregationRule")
        if agg:
            for other in croles.values():
                if other is cr:
                    continue
                labels = other["metadata"].get("labels") or {}
                if any(_labels_match(sel, labels) for sel in agg.get("clusterRoleSelectors") or []):
                    rules += other.get("rules") or []
        return rules

    out = []
    for b in objects:
        kind = b.get("kind")
        if kind not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(_subject_matches(s, sa_ns, sa_name) for s in b.get("subjects") or []):
            continue
        ref = b.get("roleRef") or {}
        bns = b["metadata"].get("namespace", "default") if kind == "RoleBinding" else None
        if ref.get("kind") == "ClusterRole":
            label = "ClusterRole/%s" % ref.get("name")
            rules = crole_rules(ref.get("name"))
        elif ref.get("kind") == "Role" and kind == "RoleBinding":
            label = "Role/%s/%s" % (bns, ref.get("name"))
            rules = (roles.get((bns, ref.get("name"))) or {}).get("rules") or []
        else:
            continue
        if bns is not None:
            label += " (RoleBinding %s/%s)" % (bns, b["metadata"]["name"])
        for i, r in enumerate(rules):
            out.append(Rule(label, i, r, bns))
    return out


def _is_test_control(req):
    return (req.get("path") or "").startswith("/_double/")


def _builtin_nonresource(a):
    if a.resource_request or a.verb != "get":
        return False
    return any(a.path == u or (u.endswith("*") and a.path.startswith(u[:-1])) for u in BUILTIN_NONRESOURCE)


def _policy(rbac_paths, yaml2json, objects):
    if objects is not None:
        return objects
    return load_objects(rbac_paths, yaml2json)


def check_requests(requests, rbac_paths, service_account, yaml2json=None, warnings=None, objects=None):
    """The requests that the RBAC objects in rbac_paths (files or
    directories of YAML) do not allow for service_account
    ("system:serviceaccount:NS:NAME" or "NS:NAME"), as Violations, one per
    distinct request attributes (str() gives the message). Requests to the
    double's /_double/ test controls are ignored; discovery and health URLs
    that every cluster grants through its built-in roles are allowed. If
    warnings is a list, the over-privilege warnings of unused_rules() are
    appended to it."""
    objects = _policy(rbac_paths, yaml2json, objects)
    rules = rules_for(objects, service_account)
    violations, seen = [], set()
    for req in requests:
        if _is_test_control(req):
            continue
        a = request_attributes(req)
        if any(r.allows(a) for r in rules) or _builtin_nonresource(a):
            continue
        if a.key() in seen:
            continue
        seen.add(a.key())
        q = req.get("query") or ""
        msg = "%s is not allowed for %s: %s %s%s%s" % (
            a, service_account, req.get("method"), req.get("path"), "?" if q else "", q)
        if req.get("userAgent"):
            msg += " (%s)" % req["userAgent"]
        if not rules:
            msg += "; no Role or ClusterRole is bound to it"
        violations.append(Violation(req, a, msg))
    if warnings is not None:
        warnings += unused_rules(requests, rbac_paths, service_account, yaml2json, objects=objects)
    return violations


def unused_rules(requests, rbac_paths, service_account, yaml2json=None, objects=None):
    """Over-privilege: each verb/resource a bound rule grants that no
    allowed request used, as a message."""
    objects = _policy(rbac_paths, yaml2json, objects)
    rules = rules_for(objects, service_account)
    attrs = [request_attributes(r) for r in requests if not _is_test_control(r)]
    out = []
    for rule in rules:
        used_by = [a for a in attrs if rule.allows(a)]
        for g in rule.grants():
            if not any(rule.grant_matches(g, a) for a in used_by):
                verb, group, res = g
                what = res if group is None else (res if not group else "%s.%s" % (res, group))
                out.append("unused: %s grants %s on %s (%s)" % (rule.role, verb, what, rule))
    return out


def check_by_user_agent(requests, rbac_paths, agents, yaml2json=None, warnings=None, objects=None,
                        ignore_agents=("curl/", "Python-urllib/", "python-requests/")):
    """check_requests() for a log of several programs told apart by their
    User-Agent. agents maps a User-Agent prefix to a service account, e.g.
    {"hull-operator/": "hull-system:hull-operator",
     "hull-node/": "hull-system:hull-node"}.

    A request whose User-Agent matches no prefix (and none of
    ignore_agents, the test's own clients) cannot be attributed: it is
    allowed if any of the service accounts may make it, and a violation
    otherwise. (Every client of the shared library, informers and the
    leader elector included, sends the User-Agent set on its KubeConfig; a
    request without one comes from code that forgot to set it.) For the
    unused rule warnings, such requests count for every service account."""
    objects = _policy(rbac_paths, yaml2json, objects)
    mine = {sa: [] for sa in agents.values()}
    unattributed = []
    for r in requests:
        if _is_test_control(r):
            continue
        ua = r.get("userAgent") or ""
        sa = next((s for p, s in agents.items() if ua.startswith(p)), None)
        if sa is not None:
            mine[sa].append(r)
        elif not any(ua.startswith(p) for p in ignore_agents):
            unattributed.append(r)
    out = []
    for sa, reqs in mine.items():
        out += check_requests(reqs, None, sa, objects=objects)
    if unattributed:
        rules = {sa: rules_for(objects, sa) for sa in mine}
        seen = set()
        for r in unattributed:
            a = request_attributes(r)
            if _builtin_nonresource(a) or any(x.allows(a) for rs in rules.values() for x in rs):
                continue
            if a.key() in seen:
                continue
            seen.add(a.key())
            out.append(Violation(r, a, "%s is not allowed for any of %s: %s %s (User-Agent %r)" % (
                a, ", ".join(sorted(mine)), r.get("method"), r.get("path"), r.get("userAgent") or "")))
    if warnings is not None:
        for sa, reqs in mine.items():
            warnings += unused_rules(reqs + unattributed, None, sa, objects=objects)
    return out
