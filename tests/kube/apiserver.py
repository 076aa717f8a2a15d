#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
TEST FIXTURE ONLY -- never shipped, never installed, never run in production.

A Kubernetes API-server double: a single-process, in-memory stand-in for
kube-apiserver that speaks the real REST protocol (JSON only) closely enough
to test Hull's C Kubernetes client, hull-operator, hull-node and a simulated
fleet of nodes without a cluster. Python 3 standard library only.

What it emulates, and what it does not, is written down in
docs/KUBE-DOUBLE.md. In short: resourceVersions, list pagination from
snapshots, watches with history/410/bookmarks, selectors on list and watch,
merge/JSON/strategic(-as-merge) patches, the status subresource,
finalizers, graceful pod deletion (a timer plays the kubelet), the Eviction
API with PodDisruptionBudgets (the disruption controller is emulated), CRDs
whose schemas must be structural as on a real server (a CRD it would refuse
gets the same 422 causes), with pruning, defaulting and validation of their
objects, their CEL rules (x-kubernetes-validations, evaluated by cel.py for
a subset of CEL, with a real server's messages and ratcheting; a CRD with a
rule outside the subset is refused), bearer tokens and mutual TLS. There is
no admission, no CEL cost estimation or type checking, no server-side
apply, no scheduler, no garbage collector, and pods never run.

Test-only control endpoints live under /_double/ (see --help and the doc).

    apiserver.py --port 0 --port-file PATH [--crd FILE]... [--yaml2json PATH]
                 [--tls-cert PEM --tls-key PEM [--client-ca PEM]]
                 [--token TOKEN | --token-file PATH] [--history N]
                 [--bookmark-interval SECONDS] [--pod-grace-cap SECONDS]
                 [--log PATH]
"""

import argparse
import base64
import calendar
import collections
import hmac
import heapq
import json
import math
import os
import queue
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cel  # noqa: E402  (tests/kube/cel.py, found beside this file)

BODY_MAX = 64 * 1024 * 1024
SNAPSHOTS_MAX = 1000
REQUEST_LOG_MAX = 200000
DEFAULT_WATCH_TIMEOUT = 1800


# --------------------------------------------------------------------------
# helpers

def clone(o):
    # json round trip: several times faster than copy.deepcopy for JSON data
    return json.loads(json.dumps(o))


def dumps(o):
    return json.dumps(o, separators=(",", ":"))


def rfc3339(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def meta(o):
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def gv_string(group, version):
    return version if not group else "%s/%s" % (group, version)


def go_value(v):
    """Render a value roughly as Go's %#v does in field.Error messages."""
    if isinstance(v, str):
        return json.dumps(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return dumps(v)


def json_type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            s["details"] = self.details
        return s


REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def rdetails(rt, name, kind=None):
    d = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = kind or rt.plural
    return d


def not_found(rt, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (rt.qualified, name), rdetails(rt, name))


def already_exists(rt, name):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (rt.qualified, name),
                    rdetails(rt, name))


def conflict(rt, name, why):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (rt.qualified, name, why),
                    rdetails(rt, name))


def stale(rt, name):
    return conflict(rt, name, "the object has been modified; please apply your changes to the latest "
                              "version and try again")


def invalid(rt, name, causes):
    """causes: list of (reason, field, body)"""
    msgs = []
    for (_, f, b) in causes:     # the aggregate message names each error once
        m = "%s: %s" % (f, b) if f else b
        if m not in msgs:
            msgs.append(m)
    agg = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    d = rdetails(rt, name, rt.kind)
    d["causes"] = [{"reason": r, "message": b, "field": f} for (r, f, b) in causes]
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (rt.qualified_kind, name, agg), d)


def warning_headers(ws):
    """Warning headers as k8s.io/apiserver's warning recorder writes them."""
    return {"Warning": ['299 - "%s"' % w.replace('"', '\\"') for w in ws]} if ws else {}


def expired(msg):
    return ApiError(410, "Expired", msg)


def method_not_allowed():
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def path_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


# --------------------------------------------------------------------------
# selectors

_LABEL_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY_RE = re.compile(r"(%s/)?%s" % (_DNS_SUBDOMAIN, _LABEL_NAME))
_LABEL_VALUE_RE = re.compile(r"(%s)?" % _LABEL_NAME)
_NAME_RE = re.compile(_DNS_SUBDOMAIN)
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _split_top(s):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _check_key(k):
    if not _LABEL_KEY_RE.fullmatch(k) or len(k.split("/")[0]) > 253:
        raise ValueError("invalid label key %s" % json.dumps(k))


def _check_value(v):
    if not _LABEL_VALUE_RE.fullmatch(v):
        raise ValueError("invalid label value: %s" % json.dumps(v))


def parse_label_selector(s):
    """Returns a list of (op, key, values); raises ValueError."""
    s = s.strip()
    if not s:
        return []
    reqs = []
    key = r"([^\s!=<>(),]+)"
    for part in _split_top(s):
        p = part.strip()
        m = re.fullmatch(key + r"\s+(in|notin)\s*\(([^()]*)\)", p)
        if m:
            vals = [v.strip() for v in m.group(3).split(",")]
            if vals == [""]:
                raise ValueError("for 'in', 'notin' operators, values set can't be empty")
            _check_key(m.group(1))
            for v in vals:
                _check_value(v)
            reqs.append((m.group(2), m.group(1), frozenset(vals)))
            continue
        m = re.fullmatch(key + r"\s*(==|=|!=)\s*([^\s!=<>(),]*)", p)
        if m:
            _check_key(m.group(1))
            _check_value(m.group(3))
            reqs.append(("=" if m.group(2) == "==" else m.group(2), m.group(1), m.group(3)))
            continue
        m = re.fullmatch(key + r"\s*(<|>)\s*(-?[0-9]+)", p)
        if m:
            _check_key(m.group(1))
            reqs.append((m.group(2), m.group(1), int(m.group(3))))
            continue
        m = re.fullmatch(r"(!?)\s*" + key, p)
        if m:
            _check_key(m.group(2))
            reqs.append(("!" if m.group(1) else "exists", m.group(2), None))
            continue
        raise ValueError("unable to parse requirement: %s" % json.dumps(p))
    return reqs


def labels_match(reqs, labels):
    for op, k, v in reqs:
        have = k in labels
        val = labels.get(k)
        if op == "exists":
            ok = have
        elif op == "!":
            ok = not have
        elif op == "=":
            ok = have and val == v
        elif op == "!=":
            ok = not have or val != v
        elif op == "in":
            ok = have and val in v
        elif op == "notin":
            ok = not have or val not in v
        else:
            try:
                n = int(val) if have else None
            except (TypeError, ValueError):
                n = None
            ok = n is not None and (n > v if op == ">" else n < v)
        if not ok:
            return False
    return True


def label_selector_object_matches(sel, labels):
    """metav1.LabelSelector; None selects nothing, {} selects everything."""
    if sel is None:
        return False
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In":
            if labels.get(k) not in vals:
                return False
        elif op == "NotIn":
            if k in labels and labels[k] in vals:
                return False
        elif op == "Exists":
            if k not in labels:
                return False
        elif op == "DoesNotExist":
            if k in labels:
                return False
        else:
            return False
    return True


def parse_field_selector(s, rt):
    s = s.strip()
    if not s:
        return []
    reqs = []
    for part in s.split(","):
        m = re.fullmatch(r"\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*", part)
        if not m:
            raise ValueError("invalid selector: '%s'; can't understand '%s'" % (s, part))
        f = m.group(1)
        if f not in rt.fields:
            raise ValueError('field label not supported: %s' % f)
        reqs.append((f, "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return reqs


def fields_match(reqs, rt, obj):
    for f, op, v in reqs:
        have = rt.fields[f](obj)
        if (have == v) != (op == "="):
            return False
    return True


def _path_getter(*keys, default=""):
    def get(o):
        cur = o
        for k in keys:
            if not isinstance(cur, dict):
                return default
            cur = cur.get(k)
        if cur is None:
            return default
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)
    return get


# --------------------------------------------------------------------------
# resource types

class ResType:
    def __init__(self, group, versions, plural, singular, kind, namespaced, status=False,
                 subresources=(), builtin=True, short_names=(), generation=False, fields=None,
                 schemas=None, storage_version=None, crd_name=None, validators=None):
        self.group = group
        self.versions = list(versions)
        self.storage_version = storage_version or self.versions[0]
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.namespaced = namespaced
        self.status = status
        self.subresources = set(subresources) | ({"status"} if status else set())
        self.builtin = builtin
        self.short_names = list(short_names)
        self.generation = generation
        self.schemas = schemas or {}
        self.validators = validators or {}   # version -> cel.Node (x-kubernetes-validations)
        self.crd_name = crd_name
        self.key = (group, plural)
        self.qualified = plural if not group else "%s.%s" % (plural, group)
        self.qualified_kind = kind if not group else "%s.%s" % (kind, group)
        self.fields = {"metadata.name": _path_getter("metadata", "name")}
        if namespaced:
            self.fields["metadata.namespace"] = _path_getter("metadata", "namespace")
        for f, g in (fields or {}).items():
            self.fields[f] = g

    def api_version(self, version=None):
        return gv_string(self.group, version or self.storage_version)


POD_FIELDS = {f: _path_getter(*f.split(".")) for f in (
    "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "status.phase", "status.podIP", "status.nominatedNodeName")}
POD_FIELDS["spec.hostNetwork"] = _path_getter("spec", "hostNetwork", default="false")
EVENT_FIELDS = {f: _path_getter(*f.split(".")) for f in (
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "source", "type")}


def builtin_types():
    return [
        ResType("", ["v1"], "namespaces", "namespace", "Namespace", False, status=True,
                subresources=("finalize",), short_names=("ns",),
                fields={"status.phase": _path_getter("status", "phase")}),
        ResType("", ["v1"], "nodes", "node", "Node", False, status=True, short_names=("no",),
                fields={"spec.unschedulable": _path_getter("spec", "unschedulable", default="false")}),
        ResType("", ["v1"], "pods", "pod", "Pod", True, status=True, subresources=("eviction",),
                short_names=("po",), fields=POD_FIELDS),
        ResType("", ["v1"], "events", "event", "Event", True, short_names=("ev",), fields=EVENT_FIELDS),
        ResType("events.k8s.io", ["v1"], "events", "event", "Event", True, short_names=("ev",)),
        ResType("policy", ["v1"], "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget",
                True, status=True, short_names=("pdb",), generation=True),
        ResType("coordination.k8s.io", ["v1"], "leases", "lease", "Lease", True),
        ResType("apiextensions.k8s.io", ["v1"], "customresourcedefinitions", "customresourcedefinition",
                "CustomResourceDefinition", False, status=True, short_names=("crd", "crds"),
                generation=True),
    ]


# --------------------------------------------------------------------------
# structural schemas: pruning, defaulting, validation

def schema_prune_default(s, v, path, pruned, root=False):
    """Prune unknown fields and apply defaults in place; returns the value."""
    if not isinstance(s, dict):
        return v
    if isinstance(v, dict):
        props = s.get("properties")
        ap = s.get("additionalProperties")
        preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
        for k in list(v.keys()):
            sub = path + "." + k if path else k
            if root and k in ("apiVersion", "kind", "metadata"):
                continue
            if props is not None and k in props:
                ps = props[k]
                if v[k] is None and not (isinstance(ps, dict) and ps.get("nullable")):
                    del v[k]      # non-nullable nulls are dropped, then defaulted
                    continue
                v[k] = schema_prune_default(ps, v[k], sub, pruned)
            elif isinstance(ap, dict):
                v[k] = schema_prune_default(ap, v[k], sub, pruned)
            elif ap is True or preserve:
                continue
            else:
                del v[k]
                pruned.append(sub)
        for k, ps in (props or {}).items():
            if k not in v and isinstance(ps, dict) and "default" in ps:
                v[k] = schema_prune_default(ps, clone(ps["default"]), path + "." + k if path else k, [])
    elif isinstance(v, list) and isinstance(s.get("items"), dict):
        for i in range(len(v)):
            v[i] = schema_prune_default(s["items"], v[i], "%s[%d]" % (path, i), pruned)
    return v


def _type_ok(t, v):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return True


def _enum_has(enum, v):
    for e in enum:
        if e == v and type(e) is type(v) or (json_type_name(e) == json_type_name(v) == "integer" and e == v):
            return True
        if isinstance(e, (int, float)) and isinstance(v, (int, float)) and not isinstance(e, bool) \
                and not isinstance(v, bool) and e == v:
            return True
    return False


# the schema errors after which kube-apiserver runs no CEL rule
# (customresource/strategy.go, hasBlockingErr)
CEL_BLOCKING = ("FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
                "FieldValueTypeInvalid")


def schema_validate(s, v, path, errs):
    """Append (reason, field, body) to errs."""
    if not isinstance(s, dict):
        return
    name = path or "body"
    if v is None:
        if s.get("nullable"):
            return
        t = s.get("type") or ("int-or-string" if s.get("x-kubernetes-int-or-string") else None)
        if t:
            errs.append(("FieldValueTypeInvalid", path, 'Invalid value: "null": %s in body must be of type %s: "null"'
                         % (name, t)))
        return
    if s.get("x-kubernetes-int-or-string"):
        if not (_type_ok("integer", v) or isinstance(v, str)):
            errs.append(("FieldValueTypeInvalid", path, 'Invalid value: "%s": %s in body must be of type integer,string: "%s"'
                         % (json_type_name(v), name, json_type_name(v))))
            return
    elif "type" in s and not _type_ok(s["type"], v):
        errs.append(("FieldValueTypeInvalid", path, 'Invalid value: "%s": %s in body must be of type %s: "%s"'
                     % (json_type_name(v), name, s["type"], json_type_name(v))))
        return
    if "enum" in s and isinstance(s["enum"], list) and not _enum_has(s["enum"], v):
        errs.append(("FieldValueNotSupported", path, "Unsupported value: %s: supported values: %s"
                     % (go_value(v), ", ".join(go_value(e) for e in s["enum"]))))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s:
            if s.get("exclusiveMinimum") is True and not v > s["minimum"]:
                errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body should be greater than %s"
                             % (go_value(v), name, go_value(s["minimum"]))))
            elif not v >= s["minimum"]:
                errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body should be greater than or equal to %s"
                             % (go_value(v), name, go_value(s["minimum"]))))
        if "maximum" in s:
            if s.get("exclusiveMaximum") is True and not v < s["maximum"]:
                errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body should be less than %s"
                             % (go_value(v), name, go_value(s["maximum"]))))
            elif not v <= s["maximum"]:
                errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body should be less than or equal to %s"
                             % (go_value(v), name, go_value(s["maximum"]))))
        if "multipleOf" in s and s["multipleOf"] and (v / s["multipleOf"]) != int(v / s["multipleOf"]):
            errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body should be a multiple of %s"
                         % (go_value(v), name, go_value(s["multipleOf"]))))
    if isinstance(v, str):
        n = len(v)
        if "maxLength" in s and n > s["maxLength"]:
            errs.append(("FieldValueTooLong", path, "Too long: may not be more than %d bytes" % s["maxLength"]))
        if "minLength" in s and n < s["minLength"]:
            errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body should be at least %d chars long"
                         % (go_value(v), name, s["minLength"])))
        if "pattern" in s:
            try:
                ok = re.search(s["pattern"], v) is not None
            except re.error:
                ok = True
            if not ok:
                errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body should match '%s'"
                             % (go_value(v), name, s["pattern"])))
    if isinstance(v, list):
        if "maxItems" in s and len(v) > s["maxItems"]:
            errs.append(("FieldValueTooMany", path, "Too many: %d: must have at most %d items" % (len(v), s["maxItems"])))
        if "minItems" in s and len(v) < s["minItems"]:
            errs.append(("FieldValueInvalid", path, "Invalid value: %d: %s in body should have at least %d items"
                         % (len(v), name, s["minItems"])))
        if isinstance(s.get("items"), dict):
            for i, x in enumerate(v):
                schema_validate(s["items"], x, "%s[%d]" % (path, i), errs)
        # x-kubernetes-list-type (listtype.ValidateListSetsAndMaps): a set
        # holds each value once, a map each combination of its keys once
        lt, seen = s.get("x-kubernetes-list-type"), []
        for i, x in enumerate(v if lt in ("set", "map") else []):
            if lt == "map":
                if not isinstance(x, dict):
                    continue
                x = {k: x[k] for k in s.get("x-kubernetes-list-map-keys") or [] if k in x}
            if x in seen:
                errs.append(("FieldValueDuplicate", "%s[%d]" % (path, i), "Duplicate value: %s"
                             % (go_sharp_v(x) if isinstance(x, (dict, list)) else go_value(x))))
            else:
                seen.append(x)
    if isinstance(v, dict):
        for r in s.get("required") or []:
            if r not in v:
                errs.append(("FieldValueRequired", path + "." + r if path else r, "Required value"))
        if "maxProperties" in s and len(v) > s["maxProperties"]:
            errs.append(("FieldValueTooMany", path, "Too many: %d: must have at most %d items" % (len(v), s["maxProperties"])))
        if "minProperties" in s and len(v) < s["minProperties"]:
            errs.append(("FieldValueInvalid", path, "Invalid value: %d: %s in body should have at least %d properties"
                         % (len(v), name, s["minProperties"])))
        props = s.get("properties") or {}
        ap = s.get("additionalProperties")
        for k, x in v.items():
            if not path and k in ("apiVersion", "kind", "metadata"):
                continue
            sub = path + "." + k if path else k
            if k in props:
                schema_validate(props[k], x, sub, errs)
            elif isinstance(ap, dict):
                schema_validate(ap, x, sub, errs)
    for key in ("allOf", "anyOf", "oneOf"):
        subs = s.get(key)
        if not isinstance(subs, list):
            continue
        results = []
        for sub in subs:
            e = []
            schema_validate(sub, v, path, e)
            results.append(e)
        if key == "allOf":
            for e in results:
                errs.extend(e)
        elif key == "anyOf" and not any(not e for e in results):
            errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body must validate at least one schema (anyOf)"
                         % (go_value(v) if not isinstance(v, (dict, list)) else '"%s"' % json_type_name(v), name)))
        elif key == "oneOf" and sum(1 for e in results if not e) != 1:
            errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body must validate one and only one schema (oneOf)"
                         % (go_value(v) if not isinstance(v, (dict, list)) else '"%s"' % json_type_name(v), name)))
    if isinstance(s.get("not"), dict):
        e = []
        schema_validate(s["not"], v, path, e)
        if not e:
            errs.append(("FieldValueInvalid", path, "Invalid value: %s: %s in body must not validate the schema (not)"
                         % (go_value(v) if not isinstance(v, (dict, list)) else '"%s"' % json_type_name(v), name)))


# --------------------------------------------------------------------------
# CRD schemas: the structural-schema rules of apiextensions.k8s.io/v1
#
# kube-apiserver refuses a CRD whose schema is not structural, or whose
# defaults, list types or x-kubernetes-validations entries break the rules
# of apiextensions-apiserver (pkg/apiserver/schema/validation.go and
# complete.go, pkg/apiserver/schema/defaulting/validation.go,
# pkg/apis/apiextensions/validation/validation.go). This mirrors those
# checks with the same field paths and words, so that a CRD the double
# accepts is one a real server accepts. The CEL rules are compiled by
# cel.py, which refuses what it cannot evaluate. What is not mirrored (CEL
# type checking and cost, Go's regexp syntax, the status-subresource root
# restrictions) is listed in docs/KUBE-DOUBLE.md.

class FieldError:
    """One k8s.io/apimachinery field.Error: type, field path, detail."""
    TYPES = {"Required": ("FieldValueRequired", "Required value"),
             "Forbidden": ("FieldValueForbidden", "Forbidden"),
             "Invalid": ("FieldValueInvalid", "Invalid value"),
             "NotSupported": ("FieldValueNotSupported", "Unsupported value"),
             "Duplicate": ("FieldValueDuplicate", "Duplicate value")}
    NO_VALUE = object()

    def __init__(self, kind, path, detail="", value=NO_VALUE):
        self.kind, self.path, self.detail, self.value = kind, path, detail, value

    def body(self):
        s = self.TYPES[self.kind][1]
        if self.value is not FieldError.NO_VALUE:
            s += ": " + go_field_value(self.value)
        if self.detail:
            s += ": " + self.detail
        return s

    def text(self):
        return "%s: %s" % (self.path, self.body())

    def cause(self):
        return (self.TYPES[self.kind][0], self.path, self.body())


def go_sharp_v(v):
    """Go's %#v of a value decoded from JSON (map[string]interface{} etc.)."""
    if v is None:
        return "interface {}(nil)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[]interface {}{%s}" % ", ".join(go_sharp_v(x) for x in v)
    return "map[string]interface {}{%s}" % ", ".join(
        "%s:%s" % (json.dumps(k), go_sharp_v(v[k])) for k in sorted(v))


def go_field_value(v):
    """How field.Error renders the bad value: simple types plainly, strings
    quoted, anything else with %#v."""
    if v is None:
        return '"null"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "[]string{%s}" % ", ".join(json.dumps(x) for x in v)
    return go_sharp_v(v)


def _child(path, name):
    return path + "." + name


def _key(path, k):
    return "%s[%s]" % (path, k)


def _idx(path, i):
    return "%s[%d]" % (path, i)


def _sch(s):
    return s if isinstance(s, dict) else {}


_JUNCTORS = ("allOf", "anyOf", "oneOf")
_INT_OR_STRING_ANYOF = [{"type": "integer"}, {"type": "string"}]
_META_FIELDS = ("metadata", "kind", "apiVersion")
# the fields of a schema that belong to the structure, not to value validation
_GENERIC = ("description", "type", "title", "default", "additionalProperties", "nullable")
_EXTENSIONS = ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
               "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
               "x-kubernetes-map-type")


def _props(s):
    p = _sch(s).get("properties")
    return p if isinstance(p, dict) else {}


def _list(s, key):
    v = _sch(s).get(key)
    return v if isinstance(v, list) else []


def _is_int_or_string_anyof(s):
    # isIntOrStringAnyOfPattern: the branches are exactly {type: integer},
    # {type: string}, in this order, with nothing else in them
    return _list(s, "anyOf") == _INT_OR_STRING_ANYOF


def _is_int_or_string_allof(s):
    a = _list(s, "allOf")
    return len(a) >= 1 and _is_int_or_string_anyof(a[0])


def _value_validation(s, skip_anyof, skip_first_allof_anyof, lvl, path, errs):
    if not skip_anyof:
        for i, b in enumerate(_list(s, "anyOf")):
            _nested_value_validation(b, False, False, lvl, _idx(_child(path, "anyOf"), i), errs)
    for i, b in enumerate(_list(s, "allOf")):
        _nested_value_validation(b, skip_first_allof_anyof and i == 0, False, lvl,
                                 _idx(_child(path, "allOf"), i), errs)
    for i, b in enumerate(_list(s, "oneOf")):
        _nested_value_validation(b, False, False, lvl, _idx(_child(path, "oneOf"), i), errs)
    if isinstance(_sch(s).get("not"), dict):
        _nested_value_validation(s["not"], False, False, lvl, _child(path, "not"), errs)
    pat = _sch(s).get("pattern")
    if isinstance(pat, str) and pat:
        try:
            re.compile(pat)
        except re.error as e:
            # Go's regexp (RE2) words its errors differently; the path is the same
            errs.append(FieldError("Invalid", _child(path, "pattern"),
                                   "must be a valid regular expression, but isn't: %s" % e, pat))


def _nested_value_validation(v, skip_anyof, skip_allof_anyof, lvl, path, errs):
    """Inside allOf/anyOf/oneOf/not only value validations may appear."""
    if not isinstance(v, dict):
        return
    _value_validation(v, skip_anyof, skip_allof_anyof, lvl, path, errs)
    if isinstance(v.get("items"), dict):
        _nested_value_validation(v["items"], False, False, lvl, _child(path, "items"), errs)
    for k in sorted(_props(v)):
        _nested_value_validation(_props(v)[k], False, False, "field", _key(_child(path, "properties"), k), errs)
    forbid = lambda name, words: errs.append(FieldError("Forbidden", _child(path, name), words))  # noqa: E731
    if v.get("type"):
        forbid("type", "must be empty to be structural")
    if "additionalProperties" in v:
        forbid("additionalProperties", "must be undefined to be structural")
    if v.get("default") is not None:
        forbid("default", "must be undefined to be structural")
    if v.get("title"):
        forbid("title", "must be empty to be structural")
    if v.get("description"):
        forbid("description", "must be empty to be structural")
    if v.get("nullable") is True:
        forbid("nullable", "must be false to be structural")
    if v.get("externalDocs") is not None:
        forbid("externalDocs", "must be undefined to be structural")
    for ext in ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                "x-kubernetes-int-or-string"):
        if v.get(ext) is True:
            forbid(ext, "must be false to be structural")
    if _list(v, "x-kubernetes-list-map-keys"):
        forbid("x-kubernetes-list-map-keys", "must be empty to be structural")
    if v.get("x-kubernetes-list-type") is not None:
        forbid("x-kubernetes-list-type", "must be undefined to be structural")
    if v.get("x-kubernetes-map-type") is not None:
        forbid("x-kubernetes-map-type", "must be undefined to be structural")
    if _list(v, "x-kubernetes-validations"):
        forbid("x-kubernetes-validations", "must be empty to be structural")
    if "metadata" in _props(v):
        errs.append(FieldError("Forbidden", _key(_child(path, "properties"), "metadata"),
                               "must not be specified in a nested context"))


def _metadata_invariants(m, check_metadata, lvl, path, errs):
    m = _sch(m)
    if check_metadata and m.get("type", "") != "object":
        errs.append(FieldError("Invalid", _child(path, "type"), "must be object", m.get("type", "")))
    if lvl != "root":
        return
    # At the root only name and generateName may be restricted: with those
    # properties (and the type and default) taken away nothing may be left.
    rest = {k: v for k, v in m.items() if k not in ("type", "default")}
    props = _props(m)
    names = {"name", "generateName"}
    if props and set(props) <= names:
        rest.pop("properties", None)
    for k in list(rest):
        if rest[k] in (None, False, "", [], {}):   # zero values count as unset
            del rest[k]
    if rest:
        errs.append(FieldError("Forbidden", path, "must not specify anything other than name and generateName, "
                                                  "but metadata is implicitly specified"))


def _structural_invariants(s, lvl, path, errs):
    if not isinstance(s, dict):
        return
    typ = s.get("type") or ""
    ios = s.get("x-kubernetes-int-or-string") is True
    puf = s.get("x-kubernetes-preserve-unknown-fields") is True
    emb = s.get("x-kubernetes-embedded-resource") is True
    if typ == "array" and not isinstance(s.get("items"), dict):
        errs.append(FieldError("Required", _child(path, "items"), "must be specified"))
    if isinstance(s.get("items"), dict):
        _structural_invariants(s["items"], "item", _child(path, "items"), errs)
    for k in sorted(_props(s)):
        _structural_invariants(_props(s)[k], "field", _key(_child(path, "properties"), k), errs)
    if "additionalProperties" in s and s["additionalProperties"] is not None:
        if lvl == "root":
            errs.append(FieldError("Forbidden", _child(path, "additionalProperties"), "must not be used at the root"))
        if isinstance(s["additionalProperties"], dict):
            _structural_invariants(s["additionalProperties"], "field", _child(path, "additionalProperties"), errs)
    if ios and puf:
        errs.append(FieldError("Invalid", _child(path, "x-kubernetes-preserve-unknown-fields"),
                               "must be false if x-kubernetes-int-or-string is true", True))
    if ios and emb:
        errs.append(FieldError("Invalid", _child(path, "x-kubernetes-embedded-resource"),
                               "must be false if x-kubernetes-int-or-string is true", True))
    _value_validation(s, _is_int_or_string_anyof(s), _is_int_or_string_allof(s), lvl, path, errs)
    check_metadata = lvl == "root" or emb
    if emb and typ != "object":
        if not typ:
            errs.append(FieldError("Required", _child(path, "type"), "must be object if x-kubernetes-embedded-resource is true"))
        else:
            errs.append(FieldError("Invalid", _child(path, "type"), "must be object if x-kubernetes-embedded-resource is true", typ))
    elif not typ and not ios and not puf:
        errs.append(FieldError("Required", _child(path, "type"), {
            "root": "must not be empty at the root",
            "item": "must not be empty for specified array items",
            "field": "must not be empty for specified object fields"}[lvl]))
    if emb and s.get("additionalProperties") is not None:
        errs.append(FieldError("Forbidden", _child(path, "additionalProperties"),
                               "must not be used if x-kubernetes-embedded-resource is set"))
    if lvl == "root" and typ and typ != "object":
        errs.append(FieldError("Invalid", _child(path, "type"), "must be object at the root", typ))
    props = _props(s)
    for tm in ("kind", "apiVersion"):
        if tm in props and check_metadata and _sch(props[tm]).get("type", "") != "string":
            errs.append(FieldError("Invalid", _child(_key(_child(path, "properties"), tm), "type"), "must be string",
                                   _sch(props[tm]).get("type", "")))
    if "metadata" in props:
        _metadata_invariants(props["metadata"], check_metadata, lvl, _key(_child(path, "properties"), "metadata"), errs)
    if emb and not puf and not props:
        errs.append(FieldError("Required", _child(path, "properties"), "must not be empty if x-kubernetes-embedded-resource "
                                                                       "is true without x-kubernetes-preserve-unknown-fields"))


def _nested_completeness(v, s, spath, vpath, errs):
    """A field or item named inside a junctor must also be specified outside."""
    if not isinstance(v, dict):
        return
    if not isinstance(s, dict):
        errs.append(FieldError("Required", spath, "because it is defined in %s" % vpath))
        return
    _junctor_completeness(v, s, spath, vpath, errs)
    if isinstance(v.get("items"), dict):
        _nested_completeness(v["items"], s.get("items"), _child(spath, "items"), _child(vpath, "items"), errs)
    for k in sorted(_props(v)):
        sk, vk = _key(_child(spath, "properties"), k), _key(_child(vpath, "properties"), k)
        if k not in _props(s):
            errs.append(FieldError("Required", sk, "because it is defined in %s" % vk))
        else:
            _nested_completeness(_props(v)[k], _props(s)[k], sk, vk, errs)


def _junctor_completeness(v, s, spath, vpath, errs):
    if isinstance(v.get("not"), dict):
        _nested_completeness(v["not"], s, spath, _child(vpath, "not"), errs)
    for j in _JUNCTORS:
        for i, b in enumerate(_list(v, j)):
            _nested_completeness(b, s, spath, _idx(_child(vpath, j), i), errs)


def validate_structural(schema, path):
    """ValidateStructural: the invariants and completeness, sorted as the
    real server sorts them (by their text)."""
    errs = []
    _structural_invariants(schema, "root", path, errs)
    # as in complete.go, only the root's own junctors are checked
    _junctor_completeness(schema, schema, path, path, errs)
    return sorted(errs, key=lambda e: e.text())


def schema_prune(s, v, resource_root):
    """Prune unknown fields of v in place (no defaulting), as pruning.Prune."""
    if not isinstance(s, dict):
        return v
    if isinstance(v, dict):
        props = _props(s)
        ap = s.get("additionalProperties")
        preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
        emb = resource_root or s.get("x-kubernetes-embedded-resource") is True
        for k in list(v):
            if emb and k in ("apiVersion", "kind", "metadata") and k not in props:
                continue
            if k in props:
                schema_prune(props[k], v[k], False)
            elif isinstance(ap, dict):
                schema_prune(ap, v[k], False)
            elif not (ap is True or preserve):
                del v[k]
    elif isinstance(v, list) and isinstance(s.get("items"), dict):
        for x in v:
            schema_prune(s["items"], x, False)
    return v


def _validate_defaults(s, path, inside_meta, errs, resource_root=False):
    """defaulting.ValidateDefaults: every default is pruned and validates.
    The resource root counts as an embedded resource, so that defaults of
    apiVersion, kind and metadata are judged as metadata."""
    if not isinstance(s, dict):
        return
    emb = resource_root or s.get("x-kubernetes-embedded-resource") is True
    if emb:
        inside_meta = False
    if s.get("default") is not None:
        d = s["default"]
        dpath = _child(path, "default")
        if not inside_meta:
            if schema_prune(s, clone(d), emb) != d:
                errs.append(FieldError("Invalid", dpath, "must not have unknown fields", d))
        verrs = []
        schema_validate(s, clone(d), "", verrs)
        for reason, f, body in verrs:
            errs.append(_RawError(reason, dpath + ("." + f if f and not f.startswith("[") else f), body))
    # do not follow additionalProperties: defaults are not applied there
    if isinstance(s.get("items"), dict):
        _validate_defaults(s["items"], _child(path, "items"), inside_meta, errs)
    for k in sorted(_props(s)):
        _validate_defaults(_props(s)[k], _key(_child(path, "properties"), k),
                           inside_meta or (emb and k in _META_FIELDS), errs)


class _RawError(FieldError):
    """A schema_validate() error re-rooted under a default."""
    def __init__(self, reason, path, body):
        super().__init__("Invalid", path)
        self.reason, self.raw = reason, body

    def body(self):
        return self.raw

    def cause(self):
        return (self.reason, self.path, self.raw)


_OPENAPI_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
_RULE_REASONS = ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"]


def _openapi_schema(s, path, ssv, is_root, errs):
    """ValidateCustomResourceDefinitionOpenAPISchema without CEL compilation
    (cel.compile_schema() does that once the schema is valid).
    ssv: dict(allow_defaults, reason, inside_meta)."""
    if not isinstance(s, dict):
        return
    typ = s.get("type") or ""
    if typ and typ not in _OPENAPI_TYPES:
        errs.append(FieldError("NotSupported", _child(path, "type"),
                               "supported values: " + ", ".join(json.dumps(t) for t in _OPENAPI_TYPES), typ))
    if s.get("default") is not None and not ssv["allow_defaults"]:
        errs.append(FieldError("Forbidden", _child(path, "default"),
                               "must not be set" + (" " + ssv["reason"] if ssv["reason"] else "")))
    for key, words in (("id", "id is not supported"), ("additionalItems", "additionalItems is not supported"),
                       ("patternProperties", "patternProperties is not supported"),
                       ("definitions", "definitions is not supported"),
                       ("dependencies", "dependencies is not supported"), ("$ref", "$ref is not supported")):
        if s.get(key):
            errs.append(FieldError("Forbidden", _child(path, key), words))
    if typ == "null":
        errs.append(FieldError("Forbidden", _child(path, "type"), "type cannot be set to null, use nullable as an alternative"))
    if isinstance(s.get("items"), list):
        errs.append(FieldError("Forbidden", _child(path, "items"), "items must be a schema object and not an array"))
    if ssv["inside_meta"] and s.get("x-kubernetes-embedded-resource") is True:
        errs.append(FieldError("Forbidden", _child(path, "x-kubernetes-embedded-resource"), "must not be used inside of resource meta"))
    if s.get("uniqueItems") is True:
        errs.append(FieldError("Forbidden", _child(path, "uniqueItems"),
                               "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    props = _props(s)
    ap = s.get("additionalProperties")
    if ap is not None:
        if props and (ap is False or isinstance(ap, dict)):
            errs.append(FieldError("Forbidden", _child(path, "additionalProperties"),
                                   "additionalProperties and properties are mutual exclusive"))
        sub = ssv
        if ssv["inside_meta"]:
            sub = dict(ssv, allow_defaults=False, reason="inside additionalProperties applying to object metadata")
        _openapi_schema(ap, _child(path, "additionalProperties"), sub, False, errs)
    for k in sorted(props):
        sub = ssv
        if (is_root or s.get("x-kubernetes-embedded-resource") is True) and k in _META_FIELDS:
            sub = dict(sub, inside_meta=True)
            if is_root:
                sub = dict(sub, allow_defaults=False, reason="in top-level %s" % k)
        _openapi_schema(props[k], _key(_child(path, "properties"), k), sub, False, errs)
    if isinstance(s.get("not"), dict):
        _openapi_schema(s["not"], _child(path, "not"), ssv, False, errs)
    for j in ("allOf", "oneOf", "anyOf"):
        for i, b in enumerate(_list(s, j)):
            _openapi_schema(b, _idx(_child(path, j), i), ssv, False, errs)
    items = s.get("items") if isinstance(s.get("items"), dict) else None
    if items is not None:
        _openapi_schema(items, _child(path, "items"), ssv, False, errs)
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errs.append(FieldError("Invalid", _child(path, "x-kubernetes-preserve-unknown-fields"), "must be true or undefined", False))
    mt = s.get("x-kubernetes-map-type")
    if mt is not None and typ != "object":
        if not typ:
            errs.append(FieldError("Required", _child(path, "type"), "must be object if x-kubernetes-map-type is specified"))
        else:
            errs.append(FieldError("Invalid", _child(path, "type"), "must be object if x-kubernetes-map-type is specified", typ))
    if mt is not None and mt not in ("atomic", "granular"):
        errs.append(FieldError("NotSupported", _child(path, "x-kubernetes-map-type"),
                               'supported values: "atomic", "granular"', mt))
    lt = s.get("x-kubernetes-list-type")
    if lt is not None and typ != "array":
        if not typ:
            errs.append(FieldError("Required", _child(path, "type"), "must be array if x-kubernetes-list-type is specified"))
        else:
            errs.append(FieldError("Invalid", _child(path, "type"), "must be array if x-kubernetes-list-type is specified", typ))
    elif lt == "set" and items is not None:
        # a set holds scalars or atomic lists and maps
        if items.get("type") == "array" and items.get("x-kubernetes-list-type") not in (None, "atomic"):
            errs.append(FieldError("Invalid", _child(_child(path, "items"), "x-kubernetes-list-type"),
                                   "must be atomic as item of a list with x-kubernetes-list-type=set",
                                   items.get("x-kubernetes-list-type")))
        elif items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            # the real server reports the items' list type here (nil: "null")
            errs.append(FieldError("Invalid", _child(_child(path, "items"), "x-kubernetes-map-type"),
                                   "must be atomic as item of a list with x-kubernetes-list-type=set",
                                   items.get("x-kubernetes-list-type")))
    if lt is not None and lt not in ("atomic", "set", "map"):
        errs.append(FieldError("NotSupported", _child(path, "x-kubernetes-list-type"),
                               'supported values: "atomic", "set", "map"', lt))
    keys = _list(s, "x-kubernetes-list-map-keys")
    if keys:
        if lt is None:
            errs.append(FieldError("Required", _child(path, "x-kubernetes-list-type"), "must be map if x-kubernetes-list-map-keys is non-empty"))
        elif lt != "map":
            errs.append(FieldError("Invalid", _child(path, "x-kubernetes-list-type"), "must be map if x-kubernetes-list-map-keys is non-empty", lt))
    if lt == "map":
        if not keys:
            errs.append(FieldError("Required", _child(path, "x-kubernetes-list-map-keys"), "must not be empty if x-kubernetes-list-type is map"))
        if "items" not in s:
            errs.append(FieldError("Required", _child(path, "items"), "must have a schema if x-kubernetes-list-type is map"))
        if items is not None and items.get("type") != "object":
            errs.append(FieldError("Invalid", _child(_child(path, "items"), "type"),
                                   "must be object if parent array's x-kubernetes-list-type is map", items.get("type") or ""))
        if items is not None and items.get("type") == "object":
            seen = set()
            for k in keys:
                if k in _props(items):
                    if _sch(_props(items)[k]).get("type") in ("array", "object"):
                        # the real server shows the items' type ("object") as the value
                        errs.append(FieldError("Invalid", _child(_key(_child(_child(path, "items"), "properties"), k), "type"),
                                               "must be a scalar type if parent array's x-kubernetes-list-type is map", "object"))
                else:
                    errs.append(FieldError("Invalid", _child(path, "x-kubernetes-list-map-keys"),
                                           "entries must all be names of item properties", keys))
                if k in seen:
                    errs.append(FieldError("Invalid", _child(path, "x-kubernetes-list-map-keys"),
                                           "must not contain duplicate entries", keys))
                seen.add(k)
    # validateMapListKeysMapSet
    if items is not None and lt in ("set", "map"):
        if items.get("nullable") is True:
            errs.append(FieldError("Forbidden", _child(_child(path, "items"), "nullable"),
                                   "cannot be nullable when x-kubernetes-list-type is " + lt))
        if lt == "map":
            required = set(_list(items, "required"))
            for k in keys:
                if k not in _props(items):
                    continue
                kp = _key(_child(_child(path, "items"), "properties"), k)
                ks = _sch(_props(items)[k])
                if k not in required and ks.get("default") is None:
                    errs.append(FieldError("Required", _child(kp, "default"), "this property is in x-kubernetes-list-map-keys, "
                                                                              "so it must have a default or be a required property"))
                if ks.get("nullable") is True:
                    errs.append(FieldError("Forbidden", _child(kp, "nullable"),
                                           "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"))
    for i, rule in enumerate(_list(s, "x-kubernetes-validations")):
        rp = _idx(_child(path, "x-kubernetes-validations"), i)
        rule = _sch(rule)
        r, m = rule.get("rule") or "", rule.get("message") or ""
        if not r.strip():
            errs.append(FieldError("Required", _child(rp, "rule"), "rule is not specified"))
        elif m and not m.strip():
            errs.append(FieldError("Invalid", _child(rp, "message"), "message must be non-empty if specified", m))
        elif re.search(r"[\n\r]", m.strip()):
            errs.append(FieldError("Invalid", _child(rp, "message"), "message must not contain line breaks", m))
        elif re.search(r"[\n\r]", r.strip()) and not m.strip():
            errs.append(FieldError("Required", _child(rp, "message"), "message must be specified if rule contains line breaks"))
        me = rule.get("messageExpression")
        if me and not me.strip():
            errs.append(FieldError("Required", _child(rp, "messageExpression"), "messageExpression must be non-empty if specified"))
        if rule.get("reason") is not None and rule["reason"] not in _RULE_REASONS:
            errs.append(FieldError("NotSupported", _child(rp, "reason"),
                                   "supported values: " + ", ".join(json.dumps(x) for x in _RULE_REASONS), rule["reason"]))
        fp = rule.get("fieldPath")
        if fp and not fp.strip():
            errs.append(FieldError("Invalid", _child(rp, "fieldPath"), "fieldPath must be non-empty if specified", fp))
        if fp and re.search(r"[\n\r]", fp):
            errs.append(FieldError("Invalid", _child(rp, "fieldPath"), "fieldPath must not contain line breaks", fp))
        if fp:
            try:
                cel.valid_field_path(fp, s)
            except ValueError:
                errs.append(FieldError("Invalid", _child(rp, "fieldPath"), "fieldPath must be a valid path", fp))


def validate_crd_schema(schema, path):
    """The errors kube-apiserver gives for one openAPIV3Schema at path (e.g.
    spec.validation.openAPIV3Schema), in its order: structural problems
    (sorted), then bad defaults (only for a structural schema), then the
    OpenAPI-subset rules."""
    errs = []
    if not isinstance(schema, dict):
        return errs
    if schema.get("nullable") is True:
        errs.append(FieldError("Forbidden", _child(path, "nullable"), "nullable cannot be true at the root"))
    structural = validate_structural(schema, path)
    errs.extend(structural)
    if not structural:
        _validate_defaults(schema, path, False, errs, resource_root=True)
    _openapi_schema(schema, path, {"allow_defaults": True, "reason": "", "inside_meta": False}, True, errs)
    return errs


def crd_schema_errors(versions):
    """Schema errors of a v1 CRD's versions. The real server converts a v1 CRD
    to its internal form first, where identical per-version schemas become
    one spec.validation; so the paths read spec.validation.openAPIV3Schema
    when every version has the same schema (one version always does), and
    spec.versions[i].schema.openAPIV3Schema otherwise."""
    schemas = [((v.get("schema") or {}).get("openAPIV3Schema") if isinstance(v, dict) else None) for v in versions]
    if not schemas:
        return []
    if all(s == schemas[0] for s in schemas):
        return validate_crd_schema(schemas[0], "spec.validation.openAPIV3Schema")
    errs = []
    for i, s in enumerate(schemas):
        errs.extend(validate_crd_schema(s, "spec.versions[%d].schema.openAPIV3Schema" % i))
    return errs


# --------------------------------------------------------------------------
# patches

def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return clone(patch)
    if not isinstance(target, dict):
        target = {}
    else:
        target = dict(target)
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


class PatchError(Exception):
    pass


def _pointer(p):
    if p == "":
        return []
    if not p.startswith("/"):
        raise PatchError('invalid JSON pointer "%s"' % p)
    return [t.replace("~1", "/").replace("~0", "~") for t in p[1:].split("/")]


def _index(container, tok, for_add=False):
    if tok == "-" and for_add:
        return len(container)
    if not re.fullmatch(r"0|[1-9][0-9]*", tok):
        raise PatchError('invalid array index "%s"' % tok)
    i = int(tok)
    if i > len(container) or (not for_add and i == len(container)):
        raise PatchError("array index out of bounds: %d" % i)
    return i


def _parent(doc, toks):
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError('doc is missing path: "/%s"' % "/".join(toks))
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t)]
        else:
            raise PatchError('doc is missing path: "/%s"' % "/".join(toks))
    return cur


def _get(doc, toks):
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError('doc is missing path: "/%s"' % "/".join(toks))
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t)]
        else:
            raise PatchError('doc is missing path: "/%s"' % "/".join(toks))
    return cur


def _remove(doc, toks):
    if not toks:
        raise PatchError("cannot remove the whole document")
    par = _parent(doc, toks)
    t = toks[-1]
    if isinstance(par, dict):
        if t not in par:
            raise PatchError('unable to remove nonexistent key: %s: missing value' % t)
        return par.pop(t)
    if isinstance(par, list):
        return par.pop(_index(par, t))
    raise PatchError("cannot remove from a scalar")


def _add(doc, toks, value):
    if not toks:
        return value
    par = _parent(doc, toks)
    t = toks[-1]
    if isinstance(par, dict):
        par[t] = value
    elif isinstance(par, list):
        par.insert(_index(par, t, for_add=True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def json_patch(doc, ops):
    """RFC 6902 on a copy; raises PatchError (nothing applied)."""
    doc = clone(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid JSON patch operation: %s" % dumps(op))
        kind = op["op"]
        toks = _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("missing value for %s operation" % kind)
        if kind == "add":
            doc = _add(doc, toks, clone(op["value"]))
        elif kind == "remove":
            _remove(doc, toks)
        elif kind == "replace":
            if not toks:
                doc = clone(op["value"])
                continue
            par = _parent(doc, toks)
            t = toks[-1]
            if isinstance(par, dict):
                if t not in par:
                    raise PatchError('replace operation does not apply: doc is missing key: %s' % op["path"])
                par[t] = clone(op["value"])
            elif isinstance(par, list):
                par[_index(par, t)] = clone(op["value"])
            else:
                raise PatchError("cannot replace in a scalar")
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError("missing from for %s operation" % kind)
            src = _pointer(op["from"])
            if kind == "move":
                if toks[:len(src)] == src and len(toks) > len(src):
                    raise PatchError("cannot move a value into one of its children")
                val = _remove(doc, src)
            else:
                val = clone(_get(doc, src))
            doc = _add(doc, toks, val)
        elif kind == "test":
            try:
                have = _get(doc, toks)
            except PatchError:
                raise PatchError("testing value %s failed: missing path" % op["path"])
            if have != op["value"] or json_type_name(have) != json_type_name(op["value"]):
                raise PatchError("testing value %s failed: test failed" % op["path"])
        else:
            raise PatchError('Unexpected kind: %s' % kind)
    return doc


# --------------------------------------------------------------------------
# the store

class Watcher:
    def __init__(self, rt, version, ns, lsel, fsel, bookmarks):
        self.rt = rt
        self.version = version
        self.ns = ns
        self.lsel = lsel
        self.fsel = fsel
        self.bookmarks = bookmarks
        self.q = queue.SimpleQueue()
        # watches on one object or on one node's pods (the common case for
        # a fleet of per-node agents) are indexed so that a write is not
        # handed to thousands of unrelated watchers
        self.index = None
        for f, op, v in fsel:
            if op == "=" and f == "metadata.name":
                self.index = ("name", v)
                break
            if op == "=" and f == "spec.nodeName" and rt.key == ("", "pods"):
                self.index = ("node", v)

    def matches(self, o):
        if self.ns is not None and meta(o).get("namespace") != self.ns:
            return False
        if self.lsel and not labels_match(self.lsel, meta(o).get("labels") or {}):
            return False
        if self.fsel and not fields_match(self.fsel, self.rt, o):
            return False
        return True

    def transform(self, ev):
        """Apply the selectors to a store event as the watch cache does:
        an object that stops matching is DELETED, one that starts is ADDED."""
        rv, typ, obj, prev = ev
        if typ == "ADDED":
            return ("ADDED", obj) if self.matches(obj) else None
        if typ == "DELETED":
            return ("DELETED", obj) if self.matches(obj) else None
        now, before = self.matches(obj), self.matches(prev)
        if now and before:
            return ("MODIFIED", obj)
        if now:
            return ("ADDED", obj)
        if before:
            gone = dict(prev)
            gone["metadata"] = dict(meta(prev), resourceVersion=str(rv))
            return ("DELETED", gone)
        return None


CLOSE = object()


class Store:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rv = 0
        self.types = {}          # (group, plural) -> ResType
        self.objects = {}        # key -> {ns: {name: obj}}
        self.history = {}        # key -> deque of (rv, type, obj, prev)
        self.floor = {}          # key -> oldest RV a watch may start from
        self.watchers = {}       # key -> set(Watcher), all of them
        self.general = {}        # key -> set(Watcher) without an index
        self.indexed = {}        # key -> {("name"|"node", value): set(Watcher)}
        self.snapshots = collections.OrderedDict()   # id -> (rv, items)
        self.expiry_mode = "error-event"
        self.pdb_controller = True
        self.timers = []          # heap of (when, seq, fn)
        self.timer_seq = 0
        self.timer_cv = threading.Condition(self.lock)
        for rt in builtin_types():
            self._add_type(rt)
        with self.lock:
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self._create(self.types[("", "namespaces")], "v1", None,
                             {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        threading.Thread(target=self._timer_loop, daemon=True, name="timers").start()

    # -- types
    def _add_type(self, rt):
        self.types[rt.key] = rt
        self.objects.setdefault(rt.key, {})
        self.history.setdefault(rt.key, collections.deque())
        self.floor.setdefault(rt.key, self.rv)
        self.watchers.setdefault(rt.key, set())
        self.general.setdefault(rt.key, set())
        self.indexed.setdefault(rt.key, {})

    def lookup(self, group, version, plural):
        rt = self.types.get((group, plural))
        if rt is None or version not in rt.versions:
            return None
        return rt

    # -- timers (the emulated kubelet)
    def _timer_loop(self):
        with self.lock:
            while True:
                if not self.timers:
                    self.timer_cv.wait()
                    continue
                when = self.timers[0][0]
                now = time.monotonic()
                if when > now:
                    self.timer_cv.wait(when - now)
                    continue
                _, _, fn = heapq.heappop(self.timers)
                try:
                    fn()
                except Exception as e:   # never kill the timer thread
                    log("timer failed: %r" % e)

    def _schedule(self, delay, fn):
        self.timer_seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.timer_seq, fn))
        self.timer_cv.notify()

    # -- low level
    def _get(self, rt, ns, name):
        return self.objects[rt.key].get(ns or "", {}).get(name)

    def _commit(self, rt, typ, new, old):
        """Bump the RV, store, record and dispatch. 'new' is owned and is
        not modified afterwards (objects in the store are immutable)."""
        self.rv += 1
        rv = self.rv
        if typ == "DELETED":
            obj = dict(old)
            obj["metadata"] = dict(meta(old), resourceVersion=str(rv))
            m = meta(old)
            bucket = self.objects[rt.key].get(m.get("namespace") or "", {})
            bucket.pop(m.get("name"), None)
        else:
            obj = new
            obj["metadata"]["resourceVersion"] = str(rv)
            m = obj["metadata"]
            self.objects[rt.key].setdefault(m.get("namespace") or "", {})[m["name"]] = obj
        ev = (rv, typ, obj, old)
        h = self.history[rt.key]
        if len(h) >= max(1, self.args.history):
            self.floor[rt.key] = h.popleft()[0]
        h.append(ev)
        ns = m.get("namespace")
        for w in self.general[rt.key]:
            if w.ns is None or w.ns == ns:
                w.q.put(ev)
        idx = self.indexed[rt.key]
        if idx:
            targets = set(idx.get(("name", m.get("name")), ()))
            if rt.key == ("", "pods"):
                for o in (obj, old):
                    if o is not None:
                        targets.update(idx.get(("node", (o.get("spec") or {}).get("nodeName")), ()))
            for w in targets:
                if w.ns is None or w.ns == ns:
                    w.q.put(ev)
        return obj

    # -- object lifecycle
    def _new_meta_checks(self, rt, version, ns, body, name_hint=None):
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        av = body.get("apiVersion")
        if av is not None and av != rt.api_version(version):
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (av, rt.api_version(version)))
        kind = body.get("kind")
        if kind is not None and kind != rt.kind:
            raise bad_request("the kind in the data (%s) does not match the expected kind (%s)" % (kind, rt.kind))
        m = body.get("metadata")
        if m is None:
            m = body["metadata"] = {}
        if not isinstance(m, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if m.get("namespace") not in (None, "", ns):
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
        return m

    def _check_name(self, rt, name):
        if not name:
            raise invalid(rt, "", [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")])
        rx = _DNS_LABEL_RE if rt.key == ("", "namespaces") else _NAME_RE
        if len(name) > 253 or not rx.fullmatch(name):
            raise invalid(rt, name, [("FieldValueInvalid", "metadata.name",
                                      "Invalid value: %s: a lowercase RFC 1123 subdomain must consist of lower case "
                                      "alphanumeric characters, '-' or '.', and must start and end with an "
                                      "alphanumeric character" % json.dumps(name))])

    def _schema_apply(self, rt, version, obj, name, strict, old=None):
        """Prune, default and validate a custom resource in place, then
        evaluate its CEL rules (old: the stored object on update, for
        ratcheting); returns the warnings for pruned fields and ratcheted
        rules."""
        if version not in rt.schemas:
            version = rt.storage_version
        schema = rt.schemas.get(version)
        if schema is None:
            return []
        pruned = []
        schema_prune_default(schema, obj, "", pruned, root=True)
        if pruned and strict:
            raise bad_request("strict decoding error: " + ", ".join('unknown field "%s"' % p for p in pruned))
        errs = []
        schema_validate(schema, obj, "", errs)
        warnings = ['unknown field "%s"' % p for p in pruned]
        node = rt.validators.get(version)
        if node is not None:
            # strategy.go hasBlockingErr: after these schema errors the
            # rules could see values of the wrong shape, so none is run
            if any(r in CEL_BLOCKING for r, _, _ in errs):
                errs.append(("FieldValueInvalid", "<nil>", 'Invalid value: "null": some validation rules were not '
                             "checked because the object was invalid; correct the existing errors to complete "
                             "validation"))
            else:
                cerrs, cwarns = cel.validate(node, obj, old, schema)
                errs.extend(cerrs)
                warnings.extend(cwarns)
        if errs:
            # the recorder has already added the warnings: a 422 carries them too
            e = invalid(rt, name, errs)
            e.headers = warning_headers(warnings)
            raise e
        return warnings

    def _spec_part(self, rt, o):
        return {k: v for k, v in o.items()
                if k not in ("metadata", "kind", "apiVersion") and not (rt.status and k == "status")}

    def _create(self, rt, version, ns, body, strict=False):
        m = self._new_meta_checks(rt, version, ns, body)
        name = m.get("name")
        if not name and m.get("generateName"):
            for _ in range(100):
                name = m["generateName"] + uuid.uuid4().hex[:5]
                if self._get(rt, ns, name) is None:
                    break
            m["name"] = name
        self._check_name(rt, name)
        if rt.namespaced:
            nso = self._get(self.types[("", "namespaces")], None, ns)
            if nso is None:
                raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns, {"name": ns, "kind": "namespaces"})
            if meta(nso).get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", '%s "%s" is forbidden: unable to create new content in namespace %s '
                               'because it is being terminated' % (rt.qualified, name, ns),
                               {"name": name, "group": rt.group, "kind": rt.plural,
                                "causes": [{"reason": "NamespaceTerminating", "message": "namespace %s is being terminated" % ns,
                                            "field": "metadata.namespace"}]})
        if self._get(rt, ns, name) is not None:
            raise already_exists(rt, name)
        body = dict({"apiVersion": rt.api_version(), "kind": rt.kind}, **body)
        body["apiVersion"] = rt.api_version()
        body["kind"] = rt.kind
        for k in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "selfLink", "managedFields"):
            m.pop(k, None)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = rfc3339()
        if rt.generation or not rt.builtin:
            m["generation"] = 1
        # status on create, as the real registry strategies do
        if rt.key == ("", "pods"):
            body["status"] = {"phase": "Pending"}
        elif rt.key == ("", "namespaces"):
            body["status"] = {"phase": "Active"}
        elif rt.key == ("policy", "poddisruptionbudgets"):
            body["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
        elif rt.status and not rt.builtin:
            body.pop("status", None)
        warnings = []
        if not rt.builtin:
            warnings = self._schema_apply(rt, version, body, name, strict)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            newrt = self._crd_type(body)
            if any(t.crd_name is None and t.key == newrt.key for t in self.types.values()):
                raise invalid(rt, name, [("FieldValueInvalid", "spec.names.plural", "Invalid value: %s: conflicts with a built-in resource" % json.dumps(newrt.plural))])
            now = rfc3339()
            body["status"] = {
                "acceptedNames": clone(body["spec"]["names"]),
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now}],
                "storedVersions": [newrt.storage_version]}
            self._add_type(newrt)
        obj = self._commit(rt, "ADDED", body, None)
        self._after_write(rt, obj, None)
        return obj, warnings

    def _update(self, rt, version, ns, name, body, sub, require_rv, strict=False, precondition_rv=None):
        """PUT semantics; body is owned. Returns (obj, warnings)."""
        old = self._get(rt, ns, name)
        if old is None:
            raise not_found(rt, name)
        m = self._new_meta_checks(rt, version, ns, body)
        if m.get("name") not in (None, name):
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (m.get("name"), name))
        rv = m.get("resourceVersion") if precondition_rv is None else precondition_rv
        if rv:
            if rv != meta(old).get("resourceVersion"):
                raise stale(rt, name)
        elif require_rv and not rt.builtin:
            raise invalid(rt, name, [("FieldValueInvalid", "metadata.resourceVersion",
                                      "Invalid value: 0x0: must be specified for an update")])
        om = meta(old)
        if sub == "status":
            new = clone(old)
            if "status" in body:
                new["status"] = body["status"]
            else:
                new.pop("status", None)
        else:
            new = body
            nm = new["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if k in om:
                    nm[k] = om[k]
                else:
                    nm.pop(k, None)
            nm["name"] = name
            nm.pop("selfLink", None)
            nm.pop("managedFields", None)
            if rt.status:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
        new["apiVersion"] = rt.api_version()
        new["kind"] = rt.kind
        new["metadata"]["resourceVersion"] = om.get("resourceVersion")
        warnings = []
        if not rt.builtin:
            warnings = self._schema_apply(rt, version, new, name, strict, old)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions") and sub != "status":
            newrt = self._crd_type(new)
            oldrt = self.types.get(newrt.key)
            if oldrt is None or oldrt.crd_name != name:
                raise invalid(rt, name, [("FieldValueInvalid", "spec.names", "Invalid value: field is immutable")])
        if new == old:
            return old, warnings           # no-op: no RV bump, no event
        if (rt.generation or not rt.builtin) and sub != "status":
            if self._spec_part(rt, new) != self._spec_part(rt, old):
                new["metadata"]["generation"] = int(om.get("generation") or 0) + 1
        nm = new["metadata"]
        if nm.get("deletionTimestamp") and not nm.get("finalizers") and nm.get("deletionGracePeriodSeconds", 0) == 0:
            obj = self._commit(rt, "DELETED", None, new)
            self._after_delete(rt, obj)
            return obj, warnings
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions") and sub != "status":
            self._add_type(self._crd_type(new))
        obj = self._commit(rt, "MODIFIED", new, old)
        self._after_write(rt, obj, old)
        return obj, warnings

    def _delete(self, rt, ns, name, opts):
        old = self._get(rt, ns, name)
        if old is None:
            raise not_found(rt, name)
        om = meta(old)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != om.get("uid"):
            raise conflict(rt, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s" % (pre["uid"], om.get("uid")))
        if pre.get("resourceVersion") and pre["resourceVersion"] != om.get("resourceVersion"):
            raise conflict(rt, name, "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s"
                           % (pre["resourceVersion"], om.get("resourceVersion")))
        if rt.key == ("", "namespaces"):
            return self._delete_namespace(rt, old)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            crt = self.types.get((old["spec"]["group"], old["spec"]["names"]["plural"]))
            if crt is not None and crt.crd_name == name:
                for bucket in list(self.objects[crt.key].values()):
                    for o in list(bucket.values()):
                        self._commit(crt, "DELETED", None, o)
                for w in list(self.watchers[crt.key]):
                    w.q.put(CLOSE)
                del self.types[crt.key]
                del self.objects[crt.key]
                del self.history[crt.key]
                del self.floor[crt.key]
                del self.watchers[crt.key]
                del self.general[crt.key]
                del self.indexed[crt.key]
        grace = 0
        if rt.key == ("", "pods"):
            g = opts.get("gracePeriodSeconds")
            if g is None:
                g = (old.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            try:
                grace = max(0, int(g))
            except (TypeError, ValueError):
                raise bad_request("gracePeriodSeconds must be an integer")
            if not (old.get("spec") or {}).get("nodeName") or (old.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                grace = 0           # never ran or finished: nothing to wait for
            if om.get("deletionTimestamp"):
                cur = om.get("deletionGracePeriodSeconds", 0)
                if grace >= cur:
                    return old, False   # already deleting, no shorter grace
        finalizers = om.get("finalizers")
        if grace > 0 or finalizers:
            if om.get("deletionTimestamp") and om.get("deletionGracePeriodSeconds", 0) == grace:
                return old, False
            new = clone(old)
            nm = new["metadata"]
            if not nm.get("deletionTimestamp") or grace < nm.get("deletionGracePeriodSeconds", 0):
                nm["deletionTimestamp"] = rfc3339(time.time() + grace)
            nm["deletionGracePeriodSeconds"] = grace
            obj = self._commit(rt, "MODIFIED", new, old)
            if grace > 0:
                uid = om.get("uid")
                delay = min(grace, self.args.pod_grace_cap)
                self._schedule(delay, lambda: self._kubelet_finish(rt, ns, name, uid))
            self._after_write(rt, obj, old)
            return obj, False
        obj = self._commit(rt, "DELETED", None, old)
        self._after_delete(rt, obj)
        return obj, True

    def _kubelet_finish(self, rt, ns, name, uid):
        """The emulated kubelet: the containers have stopped, delete with grace 0."""
        o = self._get(rt, ns, name)
        if o is None or meta(o).get("uid") != uid or not meta(o).get("deletionTimestamp"):
            return
        try:
            self._delete(rt, ns, name, {"gracePeriodSeconds": 0})
        except ApiError:
            pass

    def _delete_namespace(self, rt, old):
        name = meta(old)["name"]
        if not meta(old).get("deletionTimestamp"):
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            old = self._commit(rt, "MODIFIED", new, old)
        for t in list(self.types.values()):
            if not t.namespaced:
                continue
            for o in list(self.objects[t.key].get(name, {}).values()):
                if not meta(o).get("deletionTimestamp"):
                    try:
                        self._delete(t, name, meta(o)["name"], {"gracePeriodSeconds": 0})
                    except ApiError:
                        pass
        gone = self._maybe_finish_namespace(name)
        return (gone, True) if gone is not None else (old, False)

    def _maybe_finish_namespace(self, ns):
        nrt = self.types[("", "namespaces")]
        nso = self._get(nrt, None, ns)
        if nso is None or not meta(nso).get("deletionTimestamp"):
            return None
        for t in self.types.values():
            if t.namespaced and self.objects[t.key].get(ns):
                return None
        return self._commit(nrt, "DELETED", None, nso)

    def _after_write(self, rt, obj, old):
        if rt.key == ("", "pods"):
            self._pdb_sync(meta(obj).get("namespace"))
        elif rt.key == ("policy", "poddisruptionbudgets"):
            self._pdb_sync(meta(obj).get("namespace"))

    def _after_delete(self, rt, obj):
        ns = meta(obj).get("namespace")
        if rt.key in (("", "pods"), ("policy", "poddisruptionbudgets")):
            self._pdb_sync(ns)
        if ns:
            self._maybe_finish_namespace(ns)

    # -- the emulated disruption controller
    def _pdb_sync(self, ns):
        if not self.pdb_controller or not ns:
            return
        prt = self.types[("policy", "poddisruptionbudgets")]
        pdbs = list(self.objects[prt.key].get(ns, {}).values())
        if not pdbs:
            return
        pods = list(self.objects[("", "pods")].get(ns, {}).values())
        for pdb in pdbs:
            pdb = self._get(prt, ns, meta(pdb)["name"])
            if pdb is None:
                continue
            status = self._pdb_status(pdb, pods)
            if status != pdb.get("status"):
                new = dict(pdb)
                new["metadata"] = dict(meta(pdb))
                new["status"] = status
                self._commit(prt, "MODIFIED", new, pdb)

    @staticmethod
    def _scaled(v, total):
        if isinstance(v, str) and v.endswith("%"):
            try:
                pct = int(v[:-1])
            except ValueError:
                return None
            return int(math.ceil(pct * total / 100.0))
        try:
            return int(v)
        except (TypeError, ValueError):
            return None

    def _pdb_status(self, pdb, pods):
        spec = pdb.get("spec") or {}
        old = pdb.get("status") or {}
        sel = spec.get("selector")
        matching = [p for p in pods if label_selector_object_matches(sel, meta(p).get("labels") or {})]
        expected = len(matching)
        now = time.time()
        disrupted = {}
        live = {meta(p)["name"]: p for p in matching}
        for pname, ts in (old.get("disruptedPods") or {}).items():
            p = live.get(pname)
            try:
                t = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
            except (TypeError, ValueError):
                t = 0
            if p is not None and not meta(p).get("deletionTimestamp") and now - t < 120:
                disrupted[pname] = ts
        healthy = 0
        for p in matching:
            st = p.get("status") or {}
            if meta(p).get("deletionTimestamp") or meta(p)["name"] in disrupted:
                continue
            if st.get("phase") != "Running":
                continue
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []):
                healthy += 1
        if spec.get("maxUnavailable") is not None:
            mu = self._scaled(spec["maxUnavailable"], expected) or 0
            desired = max(0, expected - mu)
        elif spec.get("minAvailable") is not None:
            desired = self._scaled(spec["minAvailable"], expected) or 0
        else:
            desired = 0
        allowed = max(0, healthy - desired)
        status = {"observedGeneration": meta(pdb).get("generation", 1), "disruptionsAllowed": allowed,
                  "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected}
        if disrupted:
            status["disruptedPods"] = disrupted
        cond_status = "True" if allowed > 0 else "False"
        oldc = [c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"]
        if oldc and oldc[0].get("status") == cond_status:
            cond = oldc[0]
        else:
            cond = {"type": "DisruptionAllowed", "status": cond_status,
                    "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                    "message": "", "lastTransitionTime": rfc3339(),
                    "observedGeneration": meta(pdb).get("generation", 1)}
        status["conditions"] = [cond]
        return status

    def _evict(self, ns, name, body):
        prt = self.types[("", "pods")]
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an Eviction object")
        bm = body.get("metadata") or {}
        if bm.get("name") not in (None, "", name):
            raise bad_request("name in URL does not match name in Eviction object")
        opts = body.get("deleteOptions") or {}
        pod = self._get(prt, ns, name)
        if pod is None:
            raise not_found(prt, name)
        st = (pod.get("status") or {}).get("phase")
        ok = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        if st in ("Pending", "Succeeded", "Failed") or meta(pod).get("deletionTimestamp"):
            self._delete(prt, ns, name, opts)
            return ok
        pdbrt = self.types[("policy", "poddisruptionbudgets")]
        labels = meta(pod).get("labels") or {}
        pdbs = [p for p in self.objects[pdbrt.key].get(ns, {}).values()
                if label_selector_object_matches((p.get("spec") or {}).get("selector"), labels)]
        if len(pdbs) > 1:
            raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the eviction "
                           "subresource does not support.", {"causes": [{"message": "This pod has more than one "
                                                                         "PodDisruptionBudget, which the eviction subresource does not support."}]})
        if pdbs:
            pdb = pdbs[0]
            ps = pdb.get("status") or {}
            pname = meta(pdb)["name"]
            if ps.get("observedGeneration", 0) < meta(pdb).get("generation", 1) or ps.get("disruptionsAllowed", 0) <= 0:
                msg = "Cannot evict pod as it would violate the pod's disruption budget."
                raise ApiError(429, "TooManyRequests", msg, {"causes": [
                    {"reason": "DisruptionBudget",
                     "message": "The disruption budget %s needs %d healthy pods and has %d currently"
                                % (pname, ps.get("desiredHealthy", 0), ps.get("currentHealthy", 0))}]})
            new = clone(pdb)
            nst = new.setdefault("status", {})
            nst["disruptionsAllowed"] = ps.get("disruptionsAllowed", 0) - 1
            nst.setdefault("disruptedPods", {})[name] = rfc3339()
            self._commit(pdbrt, "MODIFIED", new, pdb)
        self._delete(prt, ns, name, opts)
        return ok

    # -- CRDs
    def _crd_type(self, crd):
        rt = self.types[("apiextensions.k8s.io", "customresourcedefinitions")]
        name = meta(crd).get("name", "")
        errs = []
        spec = crd.get("spec")
        if not isinstance(spec, dict):
            raise invalid(rt, name, [("FieldValueRequired", "spec", "Required value")])
        group = spec.get("group")
        names = spec.get("names") or {}
        plural, kind = names.get("plural"), names.get("kind")
        if not group:
            errs.append(("FieldValueRequired", "spec.group", "Required value"))
        if not plural:
            errs.append(("FieldValueRequired", "spec.names.plural", "Required value"))
        if not kind:
            errs.append(("FieldValueRequired", "spec.names.kind", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(("FieldValueNotSupported", "spec.scope", 'Unsupported value: %s: supported values: "Cluster", "Namespaced"'
                         % go_value(spec.get("scope"))))
        versions = spec.get("versions")
        if not isinstance(versions, list) or not versions:
            errs.append(("FieldValueRequired", "spec.versions", "Required value: must have exactly one version marked as storage version"))
            versions = []
        if group and plural and name != "%s.%s" % (plural, group):
            errs.append(("FieldValueInvalid", "metadata.name", 'Invalid value: %s: must be spec.names.plural+"."+spec.group'
                         % json.dumps(name)))
        storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
        if versions and len(storage) != 1:
            errs.append(("FieldValueInvalid", "spec.versions", "Invalid value: must have exactly one version marked as storage version"))
        schemas, served, has_status, fields = {}, [], False, {}
        for i, v in enumerate(versions):
            if not isinstance(v, dict) or not v.get("name"):
                errs.append(("FieldValueRequired", "spec.versions[%d].name" % i, "Required value"))
                continue
            s = ((v.get("schema") or {}).get("openAPIV3Schema"))
            if not isinstance(s, dict):
                errs.append(("FieldValueRequired", "spec.versions[%d].schema.openAPIV3Schema" % i,
                             "Required value: schemas are required"))
                continue
            schemas[v["name"]] = s
            if v.get("served", True):
                served.append(v["name"])
            if "status" in ((v.get("subresources") or {})):
                has_status = True
            for sf in v.get("selectableFields") or []:
                jp = (sf.get("jsonPath") or "").lstrip(".")
                if jp:
                    fields[jp] = _path_getter(*jp.split("."))
        errs.extend(e.cause() for e in crd_schema_errors(versions))
        if errs:
            raise invalid(rt, name, errs)
        validators = {}
        same = all(x == list(schemas.values())[0] for x in schemas.values())
        for i, v in enumerate(versions):
            if v.get("name") in schemas:
                where = ("spec.validation.openAPIV3Schema" if same
                         else "spec.versions[%d].schema.openAPIV3Schema" % i)
                try:
                    validators[v["name"]] = cel.compile_schema(schemas[v["name"]], where)
                except cel.Unsupported as e:
                    # a rule the double cannot evaluate must not be stored
                    # as if it were checked
                    raise ApiError(422, "Invalid", "apiserver double: CEL construct unsupported, CustomResourceDefinition "
                                   "%s refused (docs/KUBE-DOUBLE.md lists the subset): %s" % (name, e),
                                   rdetails(rt, name, rt.kind))
        return ResType(group, served, plural, names.get("singular") or kind.lower(), kind,
                       spec["scope"] == "Namespaced", status=has_status, builtin=False,
                       short_names=names.get("shortNames") or (), generation=True, fields=fields,
                       schemas=schemas, storage_version=storage[0]["name"], crd_name=name,
                       validators=validators)

    # ------------------------------------------------------------------
    # public, locking API used by the HTTP layer
    def create(self, rt, version, ns, body, strict=False):
        with self.lock:
            return self._create(rt, version, ns, body, strict)

    def get(self, rt, ns, name):
        with self.lock:
            o = self._get(rt, ns, name)
        if o is None:
            raise not_found(rt, name)
        return o

    def update(self, rt, version, ns, name, body, sub, strict=False):
        with self.lock:
            return self._update(rt, version, ns, name, body, sub, True, strict)

    def patch(self, rt, version, ns, name, ctype, patch, sub, strict=False):
        with self.lock:
            old = self._get(rt, ns, name)
            if old is None:
                raise not_found(rt, name)
            if ctype == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
                try:
                    new = json_patch(old, patch)
                except PatchError as e:
                    raise ApiError(422, "Invalid", str(e))
            else:
                if not isinstance(patch, dict):
                    raise bad_request("patch must be a JSON object")
                new = merge_patch(old, patch)
                new = clone(new)
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "the patched document is not an object")
            nm = new.get("metadata")
            if not isinstance(nm, dict):
                raise ApiError(422, "Invalid", "metadata must be an object")
            if nm.get("name") != name:
                raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (nm.get("name"), name))
            prv = nm.get("resourceVersion")
            if prv and prv != meta(old).get("resourceVersion"):
                raise stale(rt, name)
            nm["resourceVersion"] = meta(old).get("resourceVersion")
            # an RV in the patch was a precondition; a patch is otherwise unconditional
            return self._update(rt, version, ns, name, new, sub, False, strict)

    def delete(self, rt, ns, name, opts):
        with self.lock:
            return self._delete(rt, ns, name, opts)

    def evict(self, ns, name, body):
        with self.lock:
            return self._evict(ns, name, body)

    def snapshot(self, rt, ns):
        with self.lock:
            if ns is not None:
                items = list(self.objects[rt.key].get(ns, {}).values())
            else:
                items = []
                for bucket in self.objects[rt.key].values():
                    items.extend(bucket.values())
            return self.rv, items

    def save_continue(self, rv, items):
        with self.lock:
            sid = uuid.uuid4().hex
            self.snapshots[sid] = (rv, items)
            while len(self.snapshots) > SNAPSHOTS_MAX:
                self.snapshots.popitem(last=False)
            return sid

    def load_continue(self, sid):
        with self.lock:
            s = self.snapshots.get(sid)
            if s is not None:
                self.snapshots.move_to_end(sid)
            return s

    def start_watch(self, w, rv):
        """Returns the list of initial events (rv, type, obj, prev) and
        registers w, atomically. Raises ApiError 410 for a too-old RV."""
        with self.lock:
            if rv in (None, "", "0"):
                out = []
                buckets = [self.objects[w.rt.key].get(w.ns, {})] if w.ns is not None else self.objects[w.rt.key].values()
                for b in buckets:
                    for o in b.values():
                        out.append((self.rv, "ADDED", o, None))
            else:
                try:
                    n = int(rv)
                except ValueError:
                    raise bad_request('invalid resource version "%s"' % rv)
                if n < self.floor[w.rt.key]:
                    raise expired("too old resource version: %d (%d)" % (n, self.floor[w.rt.key] + 1))
                out = [e for e in self.history[w.rt.key] if e[0] > n]
            self.watchers[w.rt.key].add(w)
            if w.index is None:
                self.general[w.rt.key].add(w)
            else:
                self.indexed[w.rt.key].setdefault(w.index, set()).add(w)
            return out

    def stop_watch(self, w):
        with self.lock:
            if self.types.get(w.rt.key) is None or w not in self.watchers[w.rt.key]:
                return
            self.watchers[w.rt.key].discard(w)
            if w.index is None:
                self.general[w.rt.key].discard(w)
            else:
                bucket = self.indexed[w.rt.key].get(w.index)
                bucket.discard(w)
                if not bucket:
                    del self.indexed[w.rt.key][w.index]

    def bookmark_rv(self, w):
        """The current RV if every event up to it has reached w's queue."""
        with self.lock:
            return self.rv if w.q.empty() else None

    def compact(self):
        with self.lock:
            for k in self.history:
                self.history[k].clear()
                self.floor[k] = self.rv
            self.snapshots.clear()
            return self.rv

    def close_watches(self):
        with self.lock:
            n = 0
            for s in self.watchers.values():
                for w in s:
                    w.q.put(CLOSE)
                    n += 1
            return n

    def stats(self):
        with self.lock:
            objs = {rt.qualified: sum(len(b) for b in self.objects[k].values()) for k, rt in self.types.items()}
            watches = {rt.qualified: len(self.watchers[k]) for k, rt in self.types.items() if self.watchers[k]}
            return {"resourceVersion": str(self.rv), "objects": objs, "watches": watches,
                    "openWatches": sum(watches.values())}

    def discovery_types(self):
        with self.lock:
            return list(self.types.values())


# --------------------------------------------------------------------------
# HTTP layer

LOG = {"f": None, "lock": threading.Lock()}


def log(msg):
    f = LOG["f"]
    if f is None:
        return
    with LOG["lock"]:
        f.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))
        f.flush()


class Control:
    """Test-control state: injected failures and delays, the request log."""
    def __init__(self):
        self.lock = threading.Lock()
        self.fails = []
        self.delays = []
        self.requests = collections.deque(maxlen=REQUEST_LOG_MAX)
        self.seq = 0

    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.requests.append(entry)

    def match_fail(self, method, path):
        with self.lock:
            for r in self.fails:
                if r.get("method") and r["method"].upper() != method:
                    continue
                if not re.search(r["pathRegex"], path):
                    continue
                if r["count"] > 0:
                    r["count"] -= 1
                if r["count"] == 0:
                    self.fails.remove(r)
                return dict(r)
            return None

    def match_delay(self, method, path):
        with self.lock:
            total = 0.0
            for r in list(self.delays):
                if r.get("method") and r["method"].upper() != method:
                    continue
                if not re.search(r["pathRegex"], path):
                    continue
                total += float(r.get("seconds", 0))
                if r.get("count", -1) > 0:
                    r["count"] -= 1
                    if r["count"] == 0:
                        self.delays.remove(r)
            return total


STORE = None
CONTROL = Control()
ARGS = None
SERVER_ADDR = ["127.0.0.1:0"]


def group_versions(types):
    groups = collections.OrderedDict()
    for rt in types:
        g = groups.setdefault(rt.group, [])
        for v in rt.versions:
            if v not in g:
                g.append(v)
    return groups


def _version_key(v):
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    stab = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stab, -int(m.group(1)), -int(m.group(3) or 0), v)


def resource_list(types, group, version):
    res = []
    for rt in types:
        if rt.group != group or version not in rt.versions:
            continue
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        e = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
             "verbs": verbs}
        if rt.short_names:
            e["shortNames"] = rt.short_names
        res.append(e)
        for sub in sorted(rt.subresources):
            if sub == "eviction":
                res.append({"name": rt.plural + "/eviction", "singularName": "", "namespaced": True,
                            "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
            elif sub == "finalize":
                res.append({"name": rt.plural + "/finalize", "singularName": "", "namespaced": False,
                            "kind": rt.kind, "verbs": ["update"]})
            else:
                res.append({"name": rt.plural + "/" + sub, "singularName": "", "namespaced": rt.namespaced,
                            "kind": rt.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv_string(group, version),
            "resources": res}


def api_group(name, versions):
    vs = sorted(versions, key=_version_key)
    gv = [{"groupVersion": "%s/%s" % (name, v), "version": v} for v in vs]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gv, "preferredVersion": gv[0]}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    block_on_close = False
    ssl_context = None

    def handle_error(self, request, client_address):
        log("connection error from %s: %r" % (client_address, sys.exc_info()[1]))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "hull-kube-double/1"
    sys_version = ""

    def setup(self):
        ctx = self.server.ssl_context
        if ctx is not None:
            self.request.settimeout(10)
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *a):
        log("%s %s" % (self.address_string(), fmt % a))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_OPTIONS(self):
        self.dispatch("OPTIONS")

    # -- plumbing
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + n > BODY_MAX:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "request body too large")
                out += self.rfile.read(n)
                self.rfile.readline(1024)
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_MAX:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "request body too large")
        return self.rfile.read(n) if n > 0 else b""

    def send_raw(self, code, body, ctype="application/json", headers=None):
        lines = ["HTTP/1.1 %d %s" % (code, self.responses.get(code, ("",))[0]),
                 "Content-Type: " + ctype,
                 "Content-Length: %d" % len(body),
                 "Cache-Control: no-cache, private",
                 "Date: " + self.date_time_string(),
                 "Audit-Id: " + str(uuid.uuid4())]
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                lines.extend("%s: %s" % (k, x) for x in v)
            else:
                lines.append("%s: %s" % (k, v))
        if self.close_connection:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += body
        self.wfile.write(data)
        self.status_code = code

    def send_json(self, code, obj, headers=None):
        self.send_raw(code, dumps(obj).encode(), headers=headers)

    def send_error_status(self, e):
        h = dict(e.headers)
        self.send_json(e.code, e.status(), h)

    def dispatch(self, method):
        t0 = time.time()
        self.status_code = 0
        self.recorded = False
        self.t0 = t0
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            try:
                body = self.read_body()
            except (ValueError, OSError):
                self.close_connection = True
                raise bad_request("malformed request body")
            if path.startswith("/_double/"):
                self.control(method, path, query, body)
            else:
                self.authenticate()
                d = CONTROL.match_delay(method, path)
                if d > 0:
                    time.sleep(d)
                f = CONTROL.match_fail(method, path)
                if f is not None:
                    code = int(f.get("status", 500))
                    h = {}
                    det = {}
                    if f.get("retryAfter") is not None:
                        h["Retry-After"] = str(f["retryAfter"])
                        det["retryAfterSeconds"] = int(f["retryAfter"])
                    raise ApiError(code, f.get("reason") or REASONS.get(code, "Unknown"),
                                   f.get("message") or "injected failure (test double)", det or None, h)
                self.route(method, path, query, body)
        except ApiError as e:
            self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:   # a bug in the double: make it visible
            log("internal error on %s %s: %r" % (method, self.path, e))
            import traceback
            traceback.print_exc(file=sys.stderr)
            try:
                self.send_error_status(ApiError(500, "InternalError", "test double internal error: %r" % e))
            except OSError:
                self.close_connection = True
        self.record()
        log('"%s %s" %d' % (method, self.path, self.status_code))

    def record(self, watch=False):
        """Log the request for /_double/requests once: watches when their
        stream starts, everything else after the answer."""
        if self.recorded:
            return
        self.recorded = True
        url = urlsplit(self.path)
        if url.path.startswith("/_double/requests"):
            return
        CONTROL.record({"method": self.command, "path": url.path, "query": url.query, "status": self.status_code,
                        "time": self.t0, "duration": time.time() - self.t0, "watch": watch,
                        "userAgent": self.headers.get("User-Agent", "")})

    def authenticate(self):
        token = ARGS.token
        if ARGS.token_file:
            try:
                with open(ARGS.token_file) as f:
                    token = f.read().strip()
            except OSError:
                token = None
        if not token and not ARGS.client_ca:
            return
        if ARGS.client_ca and isinstance(self.connection, ssl.SSLSocket):
            try:
                if self.connection.getpeercert():
                    return
            except (ValueError, ssl.SSLError):
                pass
        auth = self.headers.get("Authorization") or ""
        if token and auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
            return
        raise ApiError(401, "Unauthorized", "Unauthorized")

    # -- test control
    def control(self, method, path, query, body):
        def parsed():
            try:
                return json.loads(body or b"{}")
            except ValueError:
                raise bad_request("bad JSON")
        if path == "/_double/compact" and method == "POST":
            self.send_json(200, {"compactedResourceVersion": str(STORE.compact())})
        elif path == "/_double/watch-expiry-mode" and method == "POST":
            mode = parsed().get("mode")
            if mode not in ("http410", "error-event"):
                raise bad_request("mode must be http410 or error-event")
            STORE.expiry_mode = mode
            self.send_json(200, {"mode": mode})
        elif path == "/_double/close-watches" and method == "POST":
            self.send_json(200, {"closed": STORE.close_watches()})
        elif path == "/_double/fail" and method == "POST":
            r = parsed()
            if "pathRegex" not in r:
                raise bad_request("pathRegex is required")
            try:
                re.compile(r["pathRegex"])
            except re.error as e:
                raise bad_request("bad pathRegex: %s" % e)
            r["count"] = int(r.get("count", 1))
            with CONTROL.lock:
                CONTROL.fails.append(r)
            self.send_json(200, {"ok": True})
        elif path == "/_double/delay" and method == "POST":
            r = parsed()
            if "pathRegex" not in r:
                raise bad_request("pathRegex is required")
            r["count"] = int(r.get("count", -1))
            with CONTROL.lock:
                CONTROL.delays.append(r)
            self.send_json(200, {"ok": True})
        elif path == "/_double/reset" and method == "POST":
            with CONTROL.lock:
                CONTROL.fails.clear()
                CONTROL.delays.clear()
            self.send_json(200, {"ok": True})
        elif path == "/_double/disruption-controller" and method == "POST":
            STORE.pdb_controller = bool(parsed().get("enabled", True))
            self.send_json(200, {"enabled": STORE.pdb_controller})
        elif path == "/_double/requests" and method == "GET":
            since = int(query.get("since") or 0)
            with CONTROL.lock:
                out = [r for r in CONTROL.requests if r["seq"] > since]
                last = CONTROL.seq
            self.send_json(200, {"requests": out, "last": last})
        elif path == "/_double/stats" and method == "GET":
            s = STORE.stats()
            with CONTROL.lock:
                s["requests"] = CONTROL.seq
            self.send_json(200, s)
        else:
            raise path_not_found()

    # -- the API
    def route(self, method, path, query, body):
        segs = [unquote(s) for s in path.split("/") if s]
        if method == "OPTIONS":
            raise method_not_allowed()
        if segs in (["healthz"], ["readyz"], ["livez"]):
            self.send_raw(200, b"ok", "text/plain; charset=utf-8")
            return
        if segs == ["version"]:
            self.send_json(200, version_info(ARGS.kube_version))
            return
        if not segs or segs[0] not in ("api", "apis"):
            raise path_not_found()
        types = STORE.discovery_types()
        groups = group_versions(types)
        if segs[0] == "api":
            if len(segs) == 1:
                self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": SERVER_ADDR[0]}]})
                return
            group, version, rest = "", segs[1], segs[2:]
        else:
            if len(segs) == 1:
                self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                     "groups": [api_group(g, v) for g, v in groups.items() if g]})
                return
            if len(segs) == 2:
                if segs[1] not in groups or not segs[1]:
                    raise path_not_found()
                self.send_json(200, api_group(segs[1], groups[segs[1]]))
                return
            group, version, rest = segs[1], segs[2], segs[3:]
        if version not in groups.get(group, []):
            raise path_not_found()
        if not rest:
            if method != "GET":
                raise method_not_allowed()
            self.send_json(200, resource_list(types, group, version))
            return
        watch_prefix = False
        if rest[0] == "watch":
            watch_prefix = True
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise path_not_found()
        rt = STORE.lookup(group, version, rest[0])
        if rt is None or (ns is not None and not rt.namespaced):
            raise path_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise path_not_found()
        if watch_prefix and (method != "GET" or sub):
            raise path_not_found()
        strict = query.get("fieldValidation") == "Strict"

        def decode():
            try:
                return json.loads(body)
            except ValueError as e:
                raise bad_request("the body of the request could not be decoded as JSON: %s" % e)

        def out(o):
            return self.present(rt, version, o)

        def warn(ws):
            return warning_headers(ws) or None

        if name is None:
            if method == "GET":
                if watch_prefix or query.get("watch") in ("true", "1"):
                    self.watch(rt, version, ns, query)
                else:
                    self.list(rt, version, ns, query)
            elif method == "POST":
                if rt.namespaced and ns is None:
                    raise method_not_allowed()
                o, ws = STORE.create(rt, version, ns, decode(), strict)
                self.send_json(201, out(o), warn(ws))
            elif method == "DELETE":
                self.delete_collection(rt, version, ns, query, body)
            else:
                raise method_not_allowed()
            return
        if rt.namespaced and ns is None:
            raise path_not_found()
        if watch_prefix:
            q = dict(query)
            fs = q.get("fieldSelector", "")
            q["fieldSelector"] = "metadata.name=%s" % name + ("," + fs if fs else "")
            self.watch(rt, version, ns, q)
            return
        if sub == "eviction":
            if method != "POST":
                raise method_not_allowed()
            self.send_json(201, STORE.evict(ns, name, decode()))
            return
        if method == "GET":
            self.send_json(200, out(STORE.get(rt, ns, name)))
        elif method == "PUT":
            if sub == "finalize":
                sub = None
            o, ws = STORE.update(rt, version, ns, name, decode(), sub, strict)
            self.send_json(200, out(o), warn(ws))
        elif method == "PATCH" and sub != "finalize":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            accepted = ["application/json-patch+json", "application/merge-patch+json"]
            if rt.builtin:
                accepted.append("application/strategic-merge-patch+json")
            if ctype not in accepted:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               + ", ".join(accepted))
            o, ws = STORE.patch(rt, version, ns, name, ctype, decode(), sub, strict)
            self.send_json(200, out(o), warn(ws))
        elif method == "DELETE" and sub is None:
            opts = self.delete_options(query, body)
            o, deleted = STORE.delete(rt, ns, name, opts)
            if deleted and rt.builtin and rt.key not in (("", "pods"), ("apiextensions.k8s.io", "customresourcedefinitions")):
                # most registries answer an immediate delete with a Status
                det = rdetails(rt, name)
                det["uid"] = meta(o).get("uid")
                self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                     "details": det})
            else:
                self.send_json(200, out(o))
        else:
            raise method_not_allowed()

    def delete_options(self, query, body):
        opts = {}
        if body and body.strip():
            try:
                opts = json.loads(body)
            except ValueError as e:
                raise bad_request("the body of the request could not be decoded as DeleteOptions: %s" % e)
            if not isinstance(opts, dict):
                raise bad_request("DeleteOptions must be an object")
        if "gracePeriodSeconds" in query:
            try:
                opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            except ValueError:
                raise bad_request("gracePeriodSeconds must be an integer")
        return opts

    def present(self, rt, version, o, in_list=False):
        if in_list and rt.builtin:
            return {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
        av = rt.api_version(version)
        if o.get("apiVersion") != av:
            o = dict(o)
            o["apiVersion"] = av
        return o

    def selectors(self, rt, query):
        try:
            lsel = parse_label_selector(query.get("labelSelector", ""))
        except ValueError as e:
            raise bad_request("unable to parse requirement: %s" % e)
        try:
            fsel = parse_field_selector(query.get("fieldSelector", ""), rt)
        except ValueError as e:
            raise bad_request(str(e))
        return lsel, fsel

    def list(self, rt, version, ns, query):
        lsel, fsel = self.selectors(rt, query)
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise bad_request("limit must be an integer")
        cont = query.get("continue")
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont.encode() + b"==="))
                sid, start = tok["id"], int(tok["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
            snap = STORE.load_continue(sid)
            if snap is None:
                raise expired("The provided continue parameter is too old to display a consistent list result. You can "
                              "start a new list without the continue parameter, or use the continue token in this "
                              "response to retrieve the remainder of the results. Continuing with the provided token "
                              "results in an inconsistent list - objects that were created, modified, or deleted "
                              "between the time the first chunk was returned and now may show up in the list.")
            rv, items = snap
        else:
            sid, start = None, 0
            rv, items = STORE.snapshot(rt, ns)
            if lsel or fsel:
                items = [o for o in items
                         if (not lsel or labels_match(lsel, meta(o).get("labels") or {}))
                         and (not fsel or fields_match(fsel, rt, o))]
            items.sort(key=lambda o: (meta(o).get("namespace") or "", meta(o).get("name")))
        lmeta = {"resourceVersion": str(rv)}
        if limit > 0 and len(items) > start + limit:
            page = items[start:start + limit]
            if sid is None:
                sid = STORE.save_continue(rv, items)
            lmeta["continue"] = base64.urlsafe_b64encode(
                dumps({"id": sid, "start": start + limit, "rv": rv}).encode()).decode().rstrip("=")
            if not (lsel or fsel) and not query.get("labelSelector") and not query.get("fieldSelector"):
                lmeta["remainingItemCount"] = len(items) - start - limit
        else:
            page = items[start:]
        doc = {"kind": rt.kind + "List", "apiVersion": rt.api_version(version), "metadata": lmeta,
               "items": [self.present(rt, version, o, True) for o in page]}
        self.send_json(200, doc)

    def delete_collection(self, rt, version, ns, query, body):
        lsel, fsel = self.selectors(rt, query)
        opts = self.delete_options(query, body)
        rv, items = STORE.snapshot(rt, ns)
        out = []
        for o in items:
            if lsel and not labels_match(lsel, meta(o).get("labels") or {}):
                continue
            if fsel and not fields_match(fsel, rt, o):
                continue
            try:
                d, _ = STORE.delete(rt, meta(o).get("namespace"), meta(o)["name"], opts)
                out.append(self.present(rt, version, d, True))
            except ApiError:
                pass
        self.send_json(200, {"kind": rt.kind + "List", "apiVersion": rt.api_version(version),
                             "metadata": {"resourceVersion": str(STORE.rv)}, "items": out})

    # -- watch
    def watch(self, rt, version, ns, query):
        lsel, fsel = self.selectors(rt, query)
        try:
            timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            raise bad_request("timeoutSeconds must be a number")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        w = Watcher(rt, version, ns, lsel, fsel, bookmarks)
        rv = query.get("resourceVersion")
        try:
            initial = STORE.start_watch(w, rv)
        except ApiError as e:
            if e.code != 410 or STORE.expiry_mode == "http410":
                raise
            self.start_chunked()
            self.write_chunks([dumps({"type": "ERROR", "object": e.status()}).encode() + b"\n"])
            self.end_chunked()
            return
        try:
            self.start_chunked()
            self.stream(w, initial, timeout)
        finally:
            STORE.stop_watch(w)

    def start_chunked(self):
        lines = ["HTTP/1.1 200 OK", "Content-Type: application/json", "Transfer-Encoding: chunked",
                 "Cache-Control: no-cache, private", "Date: " + self.date_time_string(),
                 "Audit-Id: " + str(uuid.uuid4())]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status_code = 200
        self.record(watch=True)

    def write_chunks(self, datas):
        buf = bytearray()
        for d in datas:
            buf += b"%x\r\n" % len(d)
            buf += d
            buf += b"\r\n"
            if len(buf) > 256 * 1024:
                self.wfile.write(bytes(buf))
                buf = bytearray()
        if buf:
            self.wfile.write(bytes(buf))

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")

    def encode_event(self, w, typ, obj):
        return dumps({"type": typ, "object": self.present(w.rt, w.version, obj)}).encode() + b"\n"

    def peer_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if not r:
            return False
        if isinstance(self.connection, ssl.SSLSocket):
            return True
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def stream(self, w, initial, timeout):
        deadline = time.monotonic() + timeout
        interval = ARGS.bookmark_interval
        next_bookmark = time.monotonic() + interval
        out = []
        for ev in initial:
            t = w.transform(ev)
            if t:
                out.append(self.encode_event(w, *t))
        self.write_chunks(out)
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            wait = deadline - now
            if w.bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            wait = min(wait, 5.0)
            try:
                ev = w.q.get(timeout=wait)
            except queue.Empty:
                ev = None
            if ev is CLOSE:
                break
            if ev is None:
                if self.peer_gone():
                    self.close_connection = True
                    return
                if w.bookmarks and time.monotonic() >= next_bookmark:
                    rv = STORE.bookmark_rv(w)
                    if rv is not None:
                        bm = {"kind": w.rt.kind, "apiVersion": w.rt.api_version(w.version),
                              "metadata": {"resourceVersion": str(rv)}}
                        self.write_chunks([dumps({"type": "BOOKMARK", "object": bm}).encode() + b"\n"])
                    next_bookmark = time.monotonic() + interval
                continue
            batch = [ev]
            closing = False
            while len(batch) < 512:       # drain what is queued into one write
                try:
                    e2 = w.q.get_nowait()
                except queue.Empty:
                    break
                if e2 is CLOSE:
                    closing = True
                    break
                batch.append(e2)
            out = []
            for e in batch:
                t = w.transform(e)
                if t:
                    out.append(self.encode_event(w, *t))
            self.write_chunks(out)
            if closing:
                break
        self.end_chunked()


# --------------------------------------------------------------------------
# main

def load_crd(path, yaml2json):
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data)
    except ValueError:
        pass
    if not yaml2json:
        sys.exit("apiserver.py: %s is not JSON and no --yaml2json was given" % path)
    p = subprocess.run([yaml2json, path], capture_output=True)
    if p.returncode != 0:
        sys.exit("apiserver.py: %s" % p.stderr.decode(errors="replace").strip())
    return json.loads(p.stdout)


def version_info(git_version):
    """GET /version as the real server answers it: major and minor as strings
    taken from gitVersion ("v1.32.4" -> "1", "32")."""
    m = re.match(r"^v(\d+)\.(\d+)\.\d+", git_version or "")
    return {"major": m.group(1) if m else "", "minor": m.group(2) if m else "", "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2024-01-01T00:00:00Z", "goVersion": "python", "compiler": "python",
            "platform": "linux/amd64"}


def main(argv=None):
    global STORE, ARGS
    ap = argparse.ArgumentParser(description="Kubernetes API-server double (TEST FIXTURE ONLY)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--crd", action="append", default=[])
    ap.add_argument("--yaml2json")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--token")
    g.add_argument("--token-file")
    ap.add_argument("--history", type=int, default=1000)
    ap.add_argument("--bookmark-interval", type=float, default=5.0)
    ap.add_argument("--pod-grace-cap", type=float, default=0.2)
    ap.add_argument("--log")
    ap.add_argument("--kube-version", default="v1.32.4",
                    help="the gitVersion GET /version reports (major and minor follow from it)")
    ARGS = ap.parse_args(argv)
    if bool(ARGS.tls_cert) != bool(ARGS.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if ARGS.client_ca and not ARGS.tls_cert:
        ap.error("--client-ca needs --tls-cert/--tls-key")
    if ARGS.log:
        LOG["f"] = open(ARGS.log, "a")
    threading.stack_size(512 * 1024)
    STORE = Store(ARGS)
    crdrt = STORE.types[("apiextensions.k8s.io", "customresourcedefinitions")]
    for path in ARGS.crd:
        crd = load_crd(path, ARGS.yaml2json)
        try:
            STORE.create(crdrt, "v1", None, crd)
        except ApiError as e:
            sys.exit("apiserver.py: %s: %s" % (path, e.message))
    srv = Server((ARGS.address, ARGS.port), Handler)
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        if ARGS.client_ca:
            ctx.load_verify_locations(ARGS.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        srv.ssl_context = ctx
    port = srv.server_address[1]
    SERVER_ADDR[0] = "%s:%d" % (ARGS.address, port)
    t = threading.Thread(target=srv.serve_forever, daemon=True, name="accept")
    t.start()
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp.%d" % os.getpid()
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, ARGS.port_file)
    log("listening on %s" % SERVER_ADDR[0])
    try:
        while t.is_alive():
            t.join(3600)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
