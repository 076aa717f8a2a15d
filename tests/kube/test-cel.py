#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The API-server double evaluates CRD CEL rules (x-kubernetes-validations)
as kube-apiserver v1.32 does.

    test-cel.py APISERVER_PY YAML2JSON_EXE SOURCE_ROOT

First the evaluator itself (tests/kube/cel.py, imported from beside
apiserver.py): has() on absent fields, && and || absorbing errors from
either side, selecting an absent field, int-or-string typing, RE2's '$',
the constructs outside the subset, fieldPath normalisation. Then over HTTP,
with deploy/crds: every rule of the OS CRD refuses something and accepts
something, with the real server's Status message and causes; CEL on
create, PUT, merge and JSON patch and the status subresource; no rule run
after a blocking schema error; message, messageExpression, reason and
runtime errors; ratcheting on update; CRDs with rules outside the subset
refused. Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

APISERVER = os.path.abspath(sys.argv[1])
YAML2JSON = os.path.abspath(sys.argv[2])
SRC = os.path.abspath(sys.argv[3])
sys.path.insert(0, os.path.dirname(APISERVER))
import cel  # noqa: E402
from doubletest import Double, check, run, summary, texts, yaml_load  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kube-cel-test-")
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
OSES = "/apis/hull.dev/v1alpha1/oses"
SHA = "ab" * 32
MU_WORDS = "must be a count from 0 to 1000000000 or a percentage from 0% to 100%"
NODES_WORDS = "must be a count from 1 to 1000000000 or a percentage from 0% to 100%"
BLOCKED = ('<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
           "correct the existing errors to complete validation")


def refused(code, st, kind_name, want):
    """A 422 Invalid whose causes are want ('field: message'), in order, and
    whose message aggregates them as field.ErrorList.ToAggregate() does."""
    check(code == 422, "HTTP %d, want 422: %s" % (code, json.dumps(st)[:600]))
    check(st.get("reason") == "Invalid", "reason %r" % st.get("reason"))
    got = texts(st)
    check(got == want, "causes\n  got:  %s\n  want: %s" % ("\n        ".join(got), "\n        ".join(want)))
    agg = want[0] if len(want) == 1 else "[" + ", ".join(want) + "]"
    check(st["message"] == "%s is invalid: %s" % (kind_name, agg), "message %r" % st["message"])


def os_obj(name, **spec):
    s = {"version": "2.0.0", "operation": "upgrade", "image": {"url": "https://u.example/2.hull", "sha256": SHA}}
    for k, v in spec.items():
        if v is None:
            s.pop(k, None)
        else:
            s[k] = v
    return {"apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": name}, "spec": s}


# --------------------------------------------------------------------------
# the evaluator

def ev(rule, value, schema=None):
    p = cel.compile_rule(rule)
    return p.eval(cel.to_cel(value, schema or {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "integer"}, "n": {"type": "string", "nullable": True},
        "ios": {"x-kubernetes-int-or-string": True}, "l": {"type": "array", "items": {"type": "string"}}}}))


def is_err(v, msg):
    check(isinstance(v, cel.Err) and v.msg == msg, "want Err(%r), got %r" % (msg, v))


def t_has_and_select():
    check(ev("has(self.a)", {"a": "x"}) is True, "has present")
    check(ev("has(self.a)", {}) is False, "has absent")
    check(ev("has(self.a)", {"a": None}) is False, "null in an object with properties is absent")
    is_err(ev("self.a == 'x'", {}), "no such key: a")
    check(ev("!has(self.a) || self.a == 'x'", {}) is True, "guarded select")


def t_and_or_absorb():
    # CEL's && and || are commutative: false && error is false whichever side errs
    for rule, want in (("self.a == 'x' && false", False), ("false && self.a == 'x'", False),
                       ("self.a == 'x' || true", True), ("true || self.a == 'x'", True)):
        check(ev(rule, {}) is want, "%s: got %r" % (rule, ev(rule, {})))
    for rule in ("self.a == 'x' && true", "true && self.a == 'x'", "self.a == 'x' || false", "false || self.a == 'x'"):
        is_err(ev(rule, {}), "no such key: a")
    is_err(ev("self.a == 'x' && self.b == 1", {}), "no such key: a")      # the left error wins
    is_err(ev("1 && true", {}), "no such overload")
    is_err(ev("!1", {}), "no such overload")
    is_err(ev("self.a == 'x' ? true : false", {}), "no such key: a")
    check(ev("true ? 1 == 1 : self.a == 'x'", {}) is True, "the branch not taken is not evaluated")


def t_int_or_string():
    check(ev("type(self.ios) == int", {"ios": 5}) is True, "int")
    check(ev("type(self.ios) == string", {"ios": "5%"}) is True, "string")
    check(ev("type(self.ios) == int", {"ios": "5"}) is False, "'5' is a string")
    is_err(ev("self.ios > 0", {"ios": "5"}), "no such overload")
    check(ev("self.ios in ['1%', '2%']", {"ios": "2%"}) is True, "in")
    check(ev("self.ios in ['1%', '2%']", {"ios": 2}) is False, "an int is in no list of strings")
    check(ev("1 == '1'", {}) is False, "heterogeneous equality is false, not an error")
    is_err(ev("self.b > 0", {"b": 1.5}), "invalid data, expected int, got float64")


def t_strings_and_lists():
    check(ev("self.a.startsWith('oci://') && self.a.endsWith('@x')", {"a": "oci://r@x"}) is True, "starts/ends")
    check(ev("self.a.endsWith('@sha256:' + 'ab')", {"a": "u@sha256:ab"}) is True, "+ on strings")
    check(ev("size(self.l) == 2 && self.l.size() == 2 && size(self.a) == 3", {"l": ["a", "b"], "a": "héé"}) is True,
          "size of lists and strings (code points)")
    check(ev("self.a.matches('^(100|[1-9]?[0-9])%$')", {"a": "50%"}) is True, "matches")
    # RE2's $ is the end of the text; Python's would also match before a final newline
    check(ev("self.a.matches('^(100|[1-9]?[0-9])%$')", {"a": "50%\n"}) is False, "$ before a newline")
    check(ev("self.a.matches('[$]')", {"a": "$"}) is True, "$ in a class is a literal")
    check(ev("self.a < 'b' && -1 < 0 && 'x' in ['x'] && [1, 2] == [1, 2] && null == null", {"a": "a"}) is True,
          "comparisons and literals")
    is_err(ev("9223372036854775807 + 1 > 0", {}), "integer overflow")


def t_unsupported():
    for src in ("self.a[0] == 'x'", "self.b - 1 > 0", "self.b * 2 > 1", "oldSelf == self", "self.l.all(x, x != '')",
                "self.l.exists(x, x == 'a')", "int(self.a) > 0", "{'a': 1}.a == 1", "1.5 > 1", "1u > 0", "0x10 > 0",
                "b'x' == b'x'", "r'x' == 'x'", "'''x''' == 'x'", "self.a.contains('x')", "self.a.matches('(?=x)')",
                "self.a.matches('(a)\\\\1')", "duration('1s') > duration('0s')", "dyn(self) == self", "self.a ==",
                "'\\u00e9' == 'x'", "9223372036854775808 > 0"):
        try:
            cel.compile_rule(src)
        except cel.Unsupported:
            continue
        check(False, "%r was accepted" % src)
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "t": {"type": "string", "format": "date-time"},
                                               "m": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    for src, why in (("self.nope == 1", "undefined field 'nope'"), ("self.a.x == 1", "not an object"),
                     ("self.t == 'x'", "format date-time"), ("self.m.k == 1", "without properties")):
        try:
            cel.check_fields(cel.compile_rule(src), schema, False)
            check(False, "%r passed the field check" % src)
        except cel.Unsupported as e:
            check(why in str(e), "%r: %s" % (src, e))
    root = {"type": "object", "properties": {"metadata": {"type": "object"}}}
    cel.check_fields(cel.compile_rule("self.metadata.name != '' && has(self.metadata.generateName)"), root, True)
    try:
        cel.check_fields(cel.compile_rule("has(self.metadata.labels)"), root, True)
        check(False, "metadata.labels visible at the root")
    except cel.Unsupported:
        pass


def t_field_paths():
    s = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "string"}}}},
        "a.b": {"type": "string"}}}}}
    for fp, want in ((".spec", "spec"), (".spec.m['k.1'].x", "spec.m[k.1].x"), (".spec['a.b']", "spec.a.b"),
                     (".spec.m.key", "spec.m[key]")):
        got = cel.valid_field_path(fp, s)
        check(got == want, "%s: %r, want %r" % (fp, got, want))
    for fp, want in ((".nope", "does not refer to a valid field"), (".spec.", "unexpected end of JSON path"),
                     ("spec", "expected [ or . but got: spec"), (".spec[0]", "expected single quoted string but got 0")):
        try:
            cel.valid_field_path(fp, s)
            check(False, "%s accepted" % fp)
        except ValueError as e:
            check(str(e) == want, "%s: %r, want %r" % (fp, str(e), want))


def t_correlation():
    s = {"type": "object", "properties": {"metadata": {"type": "object"}, "spec": {"type": "object", "properties": {
        "l": {"type": "array", "items": {"type": "integer"}},
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}}}}}
    old = {"metadata": {"name": "a"}, "spec": {"l": [1, 2], "set": [1]}}
    new = json.loads(json.dumps(old))
    c = cel.Correlated(new, old, s)
    check(not c.equal(), "a root with metadata is never unchanged (metadata has no properties in the schema)")
    check(c.key("spec").equal(), "spec unchanged")
    check(c.key("spec").key("l").index(1).equal(), "list items correlate by index")
    check(c.key("spec").key("set").index(0) is None, "set items do not correlate")
    new["spec"]["l"][0] = 1.0
    check(not cel.Correlated(new, old, s).key("spec").equal(), "1.0 is not 1 (reflect.DeepEqual)")


# --------------------------------------------------------------------------
# the OS CRD over HTTP

def t_os_rules(d):
    """Every rule of deploy/crds/hull.dev_oses.yaml refuses something and
    accepts something."""
    K = lambda n: 'OS.hull.dev "%s"' % n   # noqa: E731
    oci = "oci://registry.example.com/hull/os@sha256:" + "cd" * 32
    cases = [
        # (name, spec changes, expected causes; [] = accepted)
        ("self-ref", {"strategy": {"after": {"os": "self-ref"}}},
         ['spec.strategy.after.os: Invalid value: "object": must name another OS object, not this one']),
        ("after-other", {"strategy": {"after": {"os": "staging"}}}, []),
        ("no-image", {"image": None},
         ['spec: Invalid value: "object": spec.image.url and spec.image.sha256 are required for operation upgrade']),
        ("no-sha", {"image": {"url": "https://u.example/2.hull"}},
         ['spec: Invalid value: "object": spec.image.url and spec.image.sha256 are required for operation upgrade']),
        ("rollback-no-image", {"operation": "rollback", "image": None}, []),
        ("config-none", {"operation": "config", "image": None},
         ['spec: Invalid value: "object": spec.config is required for operation config']),
        ("config-ok", {"operation": "config", "image": None, "config": {"generation": 1}}, []),
        ("age-no-created", {"strategy": {"minImageAgeSeconds": 60}},
         ['spec: Invalid value: "object": spec.image.created is required for operation upgrade when '
          'spec.strategy.minImageAgeSeconds is above 0']),
        ("age-created", {"strategy": {"minImageAgeSeconds": 60},
                         "image": {"url": "https://u.example/2.hull", "sha256": SHA, "created": "2026-12-03T10:00:00Z"}}, []),
        ("oci-other-digest", {"image": {"url": oci, "sha256": SHA}},
         ['spec.image: Invalid value: "object": for an oci:// url, sha256 must be the digest the url is pinned by']),
        ("oci-pinned", {"image": {"url": oci, "sha256": "cd" * 32}}, []),
        ("mu-120", {"strategy": {"maxUnavailable": "120%"}}, ['spec.strategy.maxUnavailable: Invalid value: "": ' + MU_WORDS]),
        ("mu-neg", {"strategy": {"maxUnavailable": -1}}, ['spec.strategy.maxUnavailable: Invalid value: "": ' + MU_WORDS]),
        ("mu-big", {"strategy": {"maxUnavailable": 1000000001}},
         ['spec.strategy.maxUnavailable: Invalid value: "": ' + MU_WORDS]),
        ("mu-05", {"strategy": {"maxUnavailable": "05%"}}, ['spec.strategy.maxUnavailable: Invalid value: "": ' + MU_WORDS]),
        ("mu-nl", {"strategy": {"maxUnavailable": "50%\n"}}, ['spec.strategy.maxUnavailable: Invalid value: "": ' + MU_WORDS]),
        ("mu-0", {"strategy": {"maxUnavailable": 0}}, []),
        ("mu-max", {"strategy": {"maxUnavailable": 1000000000}}, []),
        ("mu-100", {"strategy": {"maxUnavailable": "100%"}}, []),
        ("mu-0pc", {"strategy": {"maxUnavailable": "0%"}}, []),
        ("gate-pause", {"strategy": {"batches": [{"nodes": 1, "manualGate": True, "pauseSeconds": 5}]}},
         ['spec.strategy.batches[0]: Invalid value: "object": manualGate and pauseSeconds exclude each other']),
        ("gate", {"strategy": {"batches": [{"nodes": 1, "manualGate": True}, {"nodes": "100%", "pauseSeconds": 5}]}}, []),
        ("nodes-150", {"strategy": {"batches": [{"nodes": 1}, {"nodes": "150%"}]}},
         ['spec.strategy.batches[1].nodes: Invalid value: "": ' + NODES_WORDS]),
        ("nodes-0", {"strategy": {"batches": [{"nodes": 0}]}},
         ['spec.strategy.batches[0].nodes: Invalid value: "": ' + NODES_WORDS]),
        ("nodes-ok", {"strategy": {"batches": [{"nodes": 1000000000}, {"nodes": "0%"}, {"nodes": "37%"}]}}, []),
        ("window-empty", {"window": {"start": "01:00", "end": "01:00"}},
         ['spec.window: Invalid value: "object": start and end must differ: an empty window never opens '
          '(leave the window out for always)']),
        ("window", {"window": {"start": "23:00", "end": "01:00"}}, []),
        ("hook-both", {"hooks": {"preDrain": [{"exec": "a", "waitFor": {"label": "l"}}]}},
         ['spec.hooks.preDrain[0]: Invalid value: "object": exactly one of exec and waitFor']),
        ("hook-none", {"hooks": {"postBoot": [{"exec": "a"}, {"timeoutSeconds": 5}]}},
         ['spec.hooks.postBoot[1]: Invalid value: "object": exactly one of exec and waitFor']),
        ("wait-both", {"hooks": {"postBoot": [{"waitFor": {"label": "l", "annotation": "a"}}]}},
         ['spec.hooks.postBoot[0].waitFor: Invalid value: "object": exactly one of label and annotation']),
        ("wait-none", {"hooks": {"preDrain": [{"waitFor": {"value": "v"}}]}},
         ['spec.hooks.preDrain[0].waitFor: Invalid value: "object": exactly one of label and annotation']),
        ("hooks", {"hooks": {"preDrain": [{"exec": "a"}, {"waitFor": {"annotation": "x"}}],
                             "postBoot": [{"waitFor": {"label": "l", "value": "v"}}]}}, []),
        ("in-no-values", {"verify": {"podSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}},
         ['spec.verify.podSelector.matchExpressions[0]: Invalid value: "object": values must be non-empty for In and '
          'NotIn and empty for Exists and DoesNotExist']),
        ("exists-values", {"verify": {"podSelector": {"matchExpressions": [
            {"key": "k", "operator": "In", "values": ["v"]}, {"key": "k", "operator": "Exists", "values": ["v"]}]}}},
         ['spec.verify.podSelector.matchExpressions[1]: Invalid value: "object": values must be non-empty for In and '
          'NotIn and empty for Exists and DoesNotExist']),
        ("selector", {"verify": {"podSelector": {"matchExpressions": [
            {"key": "k", "operator": "NotIn", "values": ["v"]}, {"key": "k", "operator": "DoesNotExist"}]}}}, []),
        # several at once: a node's rules before the nodes below it, the
        # root's first (with a fieldPath, reported at that field)
        ("many", {"operation": "config", "image": None,
                  "strategy": {"after": {"os": "many"}, "batches": [{"nodes": "x", "manualGate": True, "pauseSeconds": 1}]}},
         ['spec.strategy.after.os: Invalid value: "object": must name another OS object, not this one',
          'spec: Invalid value: "object": spec.config is required for operation config',
          'spec.strategy.batches[0]: Invalid value: "object": manualGate and pauseSeconds exclude each other',
          'spec.strategy.batches[0].nodes: Invalid value: "": ' + NODES_WORDS]),
    ]
    seen = set()
    for name, spec, want in cases:
        code, st, _ = d.req("POST", OSES, os_obj(name, **spec))
        if want:
            refused(code, st, K(name), want)
            seen.update(w.split(": ", 3)[3] for w in want)
        else:
            check(code == 201, "%s: HTTP %d %s" % (name, code, json.dumps(st)[:400]))
            d.req("DELETE", OSES + "/" + name)
    # every message of the CRD was seen refusing
    rules = []
    stack = [yaml_load(YAML2JSON, os.path.join(SRC, "deploy", "crds", "hull.dev_oses.yaml"))]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            rules.extend(x.get("x-kubernetes-validations") or [])
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    msgs = {r["message"] for r in rules}
    check(len(rules) == 14 and len(msgs) == 12, "%d rules, %d messages in the OS CRD" % (len(rules), len(msgs)))
    check(msgs <= seen, "never refused: %s" % (msgs - seen))


def t_os_writes(d):
    """Rules run on PUT, merge patch, JSON patch and status writes too, after
    defaulting, on the object as it would be stored."""
    K = 'OS.hull.dev "w"'
    want = ['spec.strategy.maxUnavailable: Invalid value: "": ' + MU_WORDS]
    code, st, _ = d.req("POST", OSES, os_obj("w", strategy={"maxUnavailable": "25%"}))
    check(code == 201, "create: %d %r" % (code, st))
    code, st, _ = d.req("PATCH", OSES + "/w", {"spec": {"strategy": {"maxUnavailable": "120%"}}},
                        "application/merge-patch+json")
    refused(code, st, K, want)
    code, st, _ = d.req("PATCH", OSES + "/w", [{"op": "replace", "path": "/spec/strategy/maxUnavailable", "value": -5}],
                        "application/json-patch+json")
    refused(code, st, K, want)
    code, cur, _ = d.req("GET", OSES + "/w")
    cur["spec"]["strategy"]["maxUnavailable"] = "abc"
    code, st, _ = d.req("PUT", OSES + "/w", cur)
    refused(code, st, K, want)
    # a default counts: a batch without pauseSeconds gets 0, so manualGate passes
    code, st, _ = d.req("PATCH", OSES + "/w", {"spec": {"strategy": {"batches": [{"nodes": 1, "manualGate": True}]}}},
                        "application/merge-patch+json")
    check(code == 200 and st["spec"]["strategy"]["batches"][0]["pauseSeconds"] == 0, "gate: %d %r" % (code, st))
    code, st, _ = d.req("PATCH", OSES + "/w", {"spec": {"strategy": {"batches": [{"nodes": 1, "manualGate": True,
                                                                                   "pauseSeconds": 3}]}}},
                        "application/merge-patch+json")
    refused(code, st, K, ['spec.strategy.batches[0]: Invalid value: "object": manualGate and pauseSeconds exclude '
                          'each other'])
    # the status subresource changes only status: the (valid) spec's rules pass
    code, st, warn = d.req("PATCH", OSES + "/w/status", {"status": {"desired": 3}}, "application/merge-patch+json")
    check(code == 200 and st["status"] == {"desired": 3} and not warn, "status: %d %r %r" % (code, st, warn))
    d.req("DELETE", OSES + "/w")


def t_blocking(d):
    """After a schema error of the blocking kinds (Unsupported, Required,
    TooLong, TooMany, TypeInvalid) no rule runs and the server says so; after
    other schema errors (a pattern, a minimum) the rules still run."""
    code, st, _ = d.req("POST", OSES, os_obj("b", operation="reinstall", strategy={"maxUnavailable": "120%"}))
    refused(code, st, 'OS.hull.dev "b"',
            ['spec.operation: Unsupported value: "reinstall": supported values: "upgrade", "rollback", "config"', BLOCKED])
    code, st, _ = d.req("POST", OSES, os_obj("b", version=None, strategy={"maxUnavailable": "120%"}))
    refused(code, st, 'OS.hull.dev "b"', ["spec.version: Required value", BLOCKED])
    code, st, _ = d.req("POST", OSES, os_obj("b", version="-bad", strategy={"maxUnavailable": "120%"}))
    refused(code, st, 'OS.hull.dev "b"',
            ['spec.version: Invalid value: "-bad": spec.version in body should match \'^[A-Za-z0-9][A-Za-z0-9._+~-]*$\'',
             'spec.strategy.maxUnavailable: Invalid value: "": ' + MU_WORDS])


# --------------------------------------------------------------------------
# rules of a test CRD: the forms the OS CRD does not use, and ratcheting

def test_crd(spec_props, root_rules=None, spec_rules=None, name="things"):
    root = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": spec_props},
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}}
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    if spec_rules:
        root["properties"]["spec"]["x-kubernetes-validations"] = spec_rules
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.test.hull.dev" % name},
            "spec": {"group": "test.hull.dev", "scope": "Cluster",
                     "names": {"plural": name, "singular": name[:-1], "kind": name[:-1].capitalize()},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": root}}]}}


def W(text):
    """The Warning header of a ratcheted rule: its field error, quoted."""
    return '299 - "%s"' % text.replace('"', '\\"')


def thing(name, spec, plural="things"):
    return {"apiVersion": "test.hull.dev/v1", "kind": plural[:-1].capitalize(), "metadata": {"name": name}, "spec": spec}


def t_rule_forms(d):
    """message, no message, messageExpression (and its fallback), reason,
    runtime errors, a rule on a scalar and on a map's values."""
    props = {"a": {"type": "string"}, "c": {"type": "string"}, "ios": {"x-kubernetes-int-or-string": True,
                                                                      "x-kubernetes-validations": [{"rule": "self > 0"}]},
             "n": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 10", "message": "  small  "}]},
             "m": {"type": "object", "additionalProperties": {"type": "string", "x-kubernetes-validations": [
                 {"rule": "self != 'x'", "reason": "FieldValueForbidden", "message": "no x"}]}}}
    rules = [{"rule": "self.a != 'plain'"},
             {"rule": "self.a != 'expr'", "message": "fallback", "messageExpression": "'a is ' + self.a"},
             {"rule": "self.a != 'badexpr'", "message": "fallback", "messageExpression": "'c is ' + self.c"},
             {"rule": "self.a != 'req'", "reason": "FieldValueRequired", "message": "needed"},
             {"rule": "self.a != 'dup'", "reason": "FieldValueDuplicate", "message": "twice"},
             {"rule": "self.a != 'key' || self.c == 'x'", "message": "c must be x"}]
    code, st, _ = d.req("POST", CRDS, test_crd(props, spec_rules=rules))
    check(code == 201, "CRD: %d %s" % (code, json.dumps(st)[:600]))
    K = 'Thing.test.hull.dev "t"'
    base = "/apis/test.hull.dev/v1/things"
    for spec, want in (
            ({"a": "plain"}, ['spec: Invalid value: "object": failed rule: self.a != \'plain\'']),
            ({"a": "expr"}, ['spec: Invalid value: "object": a is expr']),
            ({"a": "badexpr"}, ['spec: Invalid value: "object": fallback']),
            ({"a": "req"}, ["spec: Required value: needed"]),
            ({"a": "dup"}, ['spec: Duplicate value: "object"']),
            ({"a": "key"}, ['spec: Invalid value: "object": no such key: c evaluating rule: c must be x']),
            ({"a": "ok", "ios": "5"}, ["spec.ios: Invalid value: \"\": 'no such overload': call arguments did not match "
                                       "a supported operator, function or macro signature for rule: self > 0"]),
            ({"a": "ok", "ios": 0}, ['spec.ios: Invalid value: "": failed rule: self > 0']),
            ({"a": "ok", "n": 12}, ['spec.n: Invalid value: "integer": small']),
            ({"a": "ok", "m": {"k1": "y", "k2": "x"}}, ["spec.m[k2]: Forbidden: no x"])):
        code, st, _ = d.req("POST", base, thing("t", spec))
        refused(code, st, K, want)
        check([c["reason"] for c in st["details"]["causes"]][0] ==
              {"R": "FieldValueRequired", "D": "FieldValueDuplicate", "F": "FieldValueForbidden"}.get(
                  want[0].split(": ")[1][0], "FieldValueInvalid"), "reason of %r: %r" % (spec, st["details"]))
    code, st, _ = d.req("POST", base, thing("t", {"a": "ok", "ios": 1, "n": 9, "m": {"k": "y"}}))
    check(code == 201, "valid thing: %d %r" % (code, st))
    d.req("DELETE", CRDS + "/things.test.hull.dev")


def t_ratcheting(d):
    """On update a failing rule whose node equals its old value is a
    warning (CRDValidationRatcheting): objects stored before the CRD gained
    the rule stay writable. Items of plain lists correlate by index, atomic
    lists only as a whole; the root never counts as unchanged."""
    item = {"type": "object", "properties": {"n": {"type": "integer"}}}
    props = {"a": {"type": "string"}, "b": {"type": "string"},
             "l": {"type": "array", "items": item},
             "al": {"type": "array", "x-kubernetes-list-type": "atomic", "items": item}}
    base = "/apis/test.hull.dev/v1/ratchets"
    K = 'Ratchet.test.hull.dev "r"'
    code, st, _ = d.req("POST", CRDS, test_crd(props, name="ratchets"))
    check(code == 201, "CRD: %d %r" % (code, st))
    code, st, _ = d.req("POST", base, thing("r", {"a": "bad", "b": "1", "l": [{"n": 0}, {"n": 1}],
                                                 "al": [{"n": 0}, {"n": 1}]}, "ratchets"))
    check(code == 201, "created before the rules: %d %r" % (code, st))
    code, crd, _ = d.req("GET", CRDS + "/ratchets.test.hull.dev")
    sch = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    sch["properties"]["spec"]["x-kubernetes-validations"] = [{"rule": "self.a != 'bad'", "message": "a is bad"}]
    for lst in ("l", "al"):
        sch["properties"]["spec"]["properties"][lst]["items"]["x-kubernetes-validations"] = [
            {"rule": "self.n != 0", "message": "n must not be 0"}]
    code, st, _ = d.req("PUT", CRDS + "/ratchets.test.hull.dev", crd)
    check(code == 200, "CRD update: %d %r" % (code, st))

    def patch(p, sub=""):
        return d.req("PATCH", base + "/r" + sub, p, "application/merge-patch+json")
    a_bad = 'spec: Invalid value: "object": a is bad'
    l0 = 'spec.l[0]: Invalid value: "object": n must not be 0'
    al0 = 'spec.al[0]: Invalid value: "object": n must not be 0'
    # spec changes (b), so its rule is checked; the unchanged items ratchet,
    # and their warnings come with the 422
    code, st, warn = patch({"spec": {"b": "2"}})
    refused(code, st, K, [a_bad])
    check(warn == [W(l0), W(al0)], "warnings with the 422: %r" % warn)
    # the status subresource leaves spec as it was: every spec rule ratchets
    code, st, warn = patch({"status": {"phase": "x"}}, "/status")
    check(code == 200, "status write: %d %r" % (code, st))
    check(warn == [W(a_bad), W(l0), W(al0)], "warnings %r" % warn)
    # so does a write that changes only metadata
    code, st, warn = patch({"metadata": {"labels": {"x": "y"}}})
    check(code == 200 and len(warn) == 3, "labels: %d %r" % (code, warn))
    # plain list: item 0 unchanged ratchets while item 1 changes; atomic list: no
    code, st, warn = patch({"spec": {"a": "good", "l": [{"n": 0}, {"n": 2}]}})
    check(code == 200 and warn == [W(l0), W(al0)], "plain list: %d %r %r" % (code, st, warn))
    code, st, warn = patch({"spec": {"al": [{"n": 0}, {"n": 2}]}})
    refused(code, st, K, [al0])
    # an item correlates with the old item at its index, whatever else changed
    code, st, warn = patch({"spec": {"l": [{"n": 0, "x": 1}, {"n": 2}]}})     # x is pruned: unchanged
    check(code == 200 and W(l0) in warn, "pruned change: %d %r" % (code, warn))
    code, st, warn = patch({"spec": {"l": [{"n": 0}]}})
    check(code == 200 and W(l0) in warn, "item 1 dropped: %d %r" % (code, warn))
    # a failing item that is new, or changed, is refused
    code, st, warn = patch({"spec": {"l": [{"n": 1}, {"n": 0}]}})
    refused(code, st, K, ['spec.l[1]: Invalid value: "object": n must not be 0'])
    d.req("DELETE", CRDS + "/ratchets.test.hull.dev")

    # the root: its metadata has no properties in the schema, so it never
    # counts as unchanged and its rules are checked on every update
    code, st, _ = d.req("POST", CRDS, test_crd({"a": {"type": "string"}}, name="roots"))
    code, st, _ = d.req("POST", "/apis/test.hull.dev/v1/roots", thing("r", {"a": "bad"}, "roots"))
    check(code == 201, "root object: %d %r" % (code, st))
    code, crd, _ = d.req("GET", CRDS + "/roots.test.hull.dev")
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [
        {"rule": "self.spec.a != 'bad'", "message": "a is bad", "fieldPath": ".spec.a"}]
    code, st, _ = d.req("PUT", CRDS + "/roots.test.hull.dev", crd)
    check(code == 200, "CRD update: %d %r" % (code, st))
    code, st, warn = d.req("PATCH", "/apis/test.hull.dev/v1/roots/r/status", {"status": {"phase": "x"}},
                           "application/merge-patch+json")
    refused(code, st, 'Root.test.hull.dev "r"', ['spec.a: Invalid value: "object": a is bad'])
    d.req("DELETE", CRDS + "/roots.test.hull.dev")


def t_crds_refused(d):
    """A rule outside the subset is refused loudly; a fieldPath the schema
    has not is refused with the real server's words."""
    for rule in ("self.a.size() > 0 && self.l.all(x, x != '')", "self.b - 1 > 0", "self.nope == 'x'",
                 "oldSelf.a == self.a"):
        code, st, _ = d.req("POST", CRDS, test_crd({"a": {"type": "string"}, "b": {"type": "integer"},
                                                    "l": {"type": "array", "items": {"type": "string"}}},
                                                   spec_rules=[{"rule": rule}]))
        check(code == 422 and st["message"].startswith("apiserver double: CEL construct unsupported")
              and "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]" in st["message"],
              "%r: %d %r" % (rule, code, st))
        code, _, _ = d.req("GET", CRDS + "/things.test.hull.dev")
        check(code == 404, "%r: the CRD was stored" % rule)
    code, st, _ = d.req("POST", CRDS, test_crd({"a": {"type": "string"}},
                                               root_rules=[{"rule": "true", "fieldPath": ".spec.nope"}]))
    refused(code, st, 'CustomResourceDefinition.apiextensions.k8s.io "things.test.hull.dev"',
            ['spec.validation.openAPIV3Schema.x-kubernetes-validations[0].fieldPath: Invalid value: ".spec.nope": '
             "fieldPath must be a valid path"])
    # and at start, a --crd the double cannot evaluate stops it
    path = os.path.join(TMP, "bad-crd.json")
    with open(path, "w") as f:
        json.dump(test_crd({"a": {"type": "string"}}, spec_rules=[{"rule": "self.a * 2"}]), f)
    p = subprocess.run([sys.executable, APISERVER, "--port", "0", "--crd", path], capture_output=True, timeout=30)
    check(p.returncode != 0 and b"apiserver double: CEL construct unsupported" in p.stderr,
          "started with an unsupported rule: %d %r" % (p.returncode, p.stderr[-300:]))


def main():
    run("has-and-select", t_has_and_select)
    run("and-or-absorb-errors", t_and_or_absorb)
    run("int-or-string-typing", t_int_or_string)
    run("strings-lists-regex", t_strings_and_lists)
    run("unsupported-constructs", t_unsupported)
    run("field-paths", t_field_paths)
    run("ratchet-correlation", t_correlation)
    crds = sorted(glob.glob(os.path.join(SRC, "deploy", "crds", "*.yaml")))
    d = Double(APISERVER, YAML2JSON, TMP, *[a for c in crds for a in ("--crd", c)])
    try:
        run("os-crd-every-rule", t_os_rules, d)
        run("os-crd-writes", t_os_writes, d)
        run("blocking-schema-errors", t_blocking, d)
        run("rule-forms", t_rule_forms, d)
        run("ratcheting", t_ratcheting, d)
        run("crds-refused", t_crds_refused, d)
    finally:
        d.stop()
    return summary()


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
