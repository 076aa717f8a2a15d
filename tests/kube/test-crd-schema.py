#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The API-server double refuses the CRDs a real kube-apiserver refuses.

    test-crd-schema.py APISERVER_PY YAML2JSON_EXE SOURCE_ROOT

Gives tests/kube/apiserver.py (over HTTP) CRDs that break the structural-
schema rules of apiextensions.k8s.io/v1 -- a missing type, anything but
value validations inside allOf/anyOf/oneOf/not, metadata restrictions,
unpruned or invalid defaults, x-kubernetes-list-type rules, malformed
x-kubernetes-validations entries -- and checks the 422 Invalid Status: one
cause per offending field, with the field paths and words of the real
server (the expected texts of the "forbidden in nested value validation"
cases are the real server's own integration-test expectations). Then: the
CRDs in deploy/crds are accepted; the old, non-structural OS CRD
(tests/kube/fixtures/oses-crd-nonstructural.yaml) is refused with exactly
the four causes a v1.32 kube-apiserver gave; a value only a CEL rule refuses
is refused (tests/kube/test-cel.py tests the rules in depth); and every CEL
rule message of deploy/crds has its twin in src/shared/osspec.c (the
operator checks every spec again, in the same words).
Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

import copy
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

APISERVER = os.path.abspath(sys.argv[1])
YAML2JSON = os.path.abspath(sys.argv[2])
SRC = os.path.abspath(sys.argv[3])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from doubletest import Double, check, run, summary, texts, yaml_load  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kube-crd-schema-test-")
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
V = "spec.validation.openAPIV3Schema"


# --------------------------------------------------------------------------
# fixtures

def crd(schema, name="things", versions=None):
    versions = versions or [{"name": "v1", "served": True, "storage": True,
                             "schema": {"openAPIV3Schema": schema}}]
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.test.hull.dev" % name},
            "spec": {"group": "test.hull.dev", "scope": "Cluster",
                     "names": {"plural": name, "singular": name[:-1], "kind": name[:-1].capitalize(),
                               "listKind": name[:-1].capitalize() + "List"},
                     "versions": versions}}


def obj(**props):
    """A root schema: type object with these properties."""
    return {"type": "object", "properties": props}


def refused(d, body, want, exact=True, name=None):
    """POST body; expect 422 whose causes are want (list of 'field: message')."""
    code, st, _ = d.req("POST", CRDS, body)
    check(code == 422, "HTTP %d, want 422: %s" % (code, json.dumps(st)[:600]))
    check(st.get("kind") == "Status" and st.get("reason") == "Invalid" and st.get("code") == 422,
          "not an Invalid Status: %r" % st)
    got = texts(st)
    if exact:
        check(sorted(got) == sorted(want), "causes\n  got:  %s\n  want: %s" % ("\n        ".join(got),
                                                                          "\n        ".join(want)))
    else:
        missing = [w for w in want if w not in got]
        check(not missing, "missing causes %s; got %s" % (missing, got))
    n = name or body["metadata"]["name"]
    agg = got[0] if len(got) == 1 else "[" + ", ".join(got) + "]"
    want_msg = 'CustomResourceDefinition.apiextensions.k8s.io "%s" is invalid: %s' % (n, agg)
    check(st["message"] == want_msg, "message\n  got:  %s\n  want: %s" % (st["message"], want_msg))
    d_ = st["details"]
    check(d_.get("group") == "apiextensions.k8s.io" and d_.get("kind") == "CustomResourceDefinition"
          and d_.get("name") == n, "details %r" % d_)
    for c in d_["causes"]:
        kind = c["message"].split(":")[0]
        reason = {"Required value": "FieldValueRequired", "Forbidden": "FieldValueForbidden",
                  "Invalid value": "FieldValueInvalid", "Unsupported value": "FieldValueNotSupported",
                  "Duplicate value": "FieldValueDuplicate"}.get(kind)
        check(c.get("reason") == reason, "cause %r: reason should be %s" % (c, reason))
    code, _, _ = d.req("GET", CRDS + "/" + n)
    check(code == 404, "a refused CRD was stored (GET gives %d)" % code)
    return st


def accepted(d, body):
    code, st, _ = d.req("POST", CRDS, body)
    check(code == 201, "HTTP %d, want 201: %s" % (code, json.dumps(st)[:800]))
    code, _, _ = d.req("DELETE", CRDS + "/" + body["metadata"]["name"])
    check(code == 200, "cleanup DELETE gave %d" % code)


# --------------------------------------------------------------------------
# checks

def t_type_required(d):
    refused(d, crd(obj(a={})), [V + ".properties[a].type: Required value: must not be empty for specified object fields"])
    refused(d, crd(obj(a={"type": "array", "items": {}})),
            [V + ".properties[a].items.type: Required value: must not be empty for specified array items"])
    refused(d, crd(obj(a={"type": "object", "additionalProperties": {}})),
            [V + ".properties[a].additionalProperties.type: Required value: must not be empty for specified object fields"])
    refused(d, crd({"properties": {"a": {"type": "string"}}}),
            [V + ".type: Required value: must not be empty at the root"])
    refused(d, crd({"type": "integer"}), [V + '.type: Invalid value: "integer": must be object at the root'])
    refused(d, crd(obj(a={"type": "array"})), [V + ".properties[a].items: Required value: must be specified"])
    refused(d, crd({"type": "object", "additionalProperties": {"type": "string"}}),
            [V + ".additionalProperties: Forbidden: must not be used at the root"])
    # no type is fine under int-or-string and preserve-unknown-fields
    accepted(d, crd(obj(a={"x-kubernetes-int-or-string": True},
                        b={"x-kubernetes-preserve-unknown-fields": True})))
    refused(d, crd(obj(a={"x-kubernetes-int-or-string": True, "x-kubernetes-preserve-unknown-fields": True})),
            [V + ".properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: true: "
                 "must be false if x-kubernetes-int-or-string is true"])
    refused(d, crd(obj(a={"type": "sting"})),
            [V + '.properties[a].type: Unsupported value: "sting": supported values: "array", "boolean", '
                 '"integer", "number", "object", "string"'])


# The real server's test/integration "forbidden in nested value validation"
# and "forbidden vendor extensions in nested value validation" cases.
NESTED = {"type": "object", "properties": {"foo": {"type": "string"}},
          "not": {"type": "string", "additionalProperties": True, "title": "hello", "description": "world",
                  "nullable": True},
          "allOf": [{"properties": {"foo": {"type": "string", "additionalProperties": True, "title": "hello",
                                            "description": "world", "nullable": True}}}],
          "anyOf": [{"items": {"type": "string", "additionalProperties": True, "title": "hello",
                               "description": "world", "nullable": True}}],
          "oneOf": [{"properties": {"foo": {"type": "string", "additionalProperties": True, "title": "hello",
                                            "description": "world", "nullable": True}}}]}
NESTED_WANT = [V + "." + x for x in (
    "anyOf[0].items.type: Forbidden: must be empty to be structural",
    "anyOf[0].items.additionalProperties: Forbidden: must be undefined to be structural",
    "anyOf[0].items.title: Forbidden: must be empty to be structural",
    "anyOf[0].items.description: Forbidden: must be empty to be structural",
    "anyOf[0].items.nullable: Forbidden: must be false to be structural",
    "allOf[0].properties[foo].type: Forbidden: must be empty to be structural",
    "allOf[0].properties[foo].additionalProperties: Forbidden: must be undefined to be structural",
    "allOf[0].properties[foo].title: Forbidden: must be empty to be structural",
    "allOf[0].properties[foo].description: Forbidden: must be empty to be structural",
    "allOf[0].properties[foo].nullable: Forbidden: must be false to be structural",
    "oneOf[0].properties[foo].type: Forbidden: must be empty to be structural",
    "oneOf[0].properties[foo].additionalProperties: Forbidden: must be undefined to be structural",
    "oneOf[0].properties[foo].title: Forbidden: must be empty to be structural",
    "oneOf[0].properties[foo].description: Forbidden: must be empty to be structural",
    "oneOf[0].properties[foo].nullable: Forbidden: must be false to be structural",
    "not.type: Forbidden: must be empty to be structural",
    "not.additionalProperties: Forbidden: must be undefined to be structural",
    "not.title: Forbidden: must be empty to be structural",
    "not.description: Forbidden: must be empty to be structural",
    "not.nullable: Forbidden: must be false to be structural")] + [
    V + ".items: Required value: because it is defined in " + V + ".anyOf[0].items"]

EXT = {"x-kubernetes-int-or-string": True}
EMB = {"x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True}
VENDOR = {"type": "object",
          "properties": {"int-or-string": dict(EXT), "embedded-resource": dict(EMB, type="object")},
          "not": {"properties": {"int-or-string": dict(EXT), "embedded-resource": dict(EMB)}},
          "allOf": [{"properties": {"int-or-string": dict(EXT), "embedded-resource": dict(EMB)}}],
          "anyOf": [{"properties": {"int-or-string": dict(EXT), "embedded-resource": dict(EMB)}}],
          "oneOf": [{"properties": {"int-or-string": dict(EXT), "embedded-resource": dict(EMB)}}]}
VENDOR_WANT = []
for j in ("allOf[0]", "anyOf[0]", "oneOf[0]", "not"):
    VENDOR_WANT += [
        V + ".%s.properties[embedded-resource].x-kubernetes-preserve-unknown-fields: Forbidden: must be false to be structural" % j,
        V + ".%s.properties[embedded-resource].x-kubernetes-embedded-resource: Forbidden: must be false to be structural" % j,
        V + ".%s.properties[int-or-string].x-kubernetes-int-or-string: Forbidden: must be false to be structural" % j]


def t_junctors(d):
    refused(d, crd(NESTED), NESTED_WANT)
    refused(d, crd(VENDOR), VENDOR_WANT)
    # each of the other forbidden keywords, one at a time; the OpenAPI-subset
    # rules look into the branches too, and add their own causes
    b0 = V + ".properties[a].anyOf[0]."
    for key, val, words, more in (
            ("default", 1, "must be undefined to be structural", []),
            ("externalDocs", {"url": "https://x"}, "must be undefined to be structural", []),
            ("x-kubernetes-list-type", "atomic", "must be undefined to be structural",
             [b0 + "type: Required value: must be array if x-kubernetes-list-type is specified"]),
            ("x-kubernetes-map-type", "atomic", "must be undefined to be structural",
             [b0 + "type: Required value: must be object if x-kubernetes-map-type is specified"]),
            ("x-kubernetes-list-map-keys", ["a"], "must be empty to be structural",
             [b0 + "x-kubernetes-list-type: Required value: must be map if x-kubernetes-list-map-keys is non-empty"]),
            ("x-kubernetes-validations", [{"rule": "true"}], "must be empty to be structural", [])):
        refused(d, crd(obj(a={"type": "integer", "anyOf": [{key: val, "minimum": 1}, {"maximum": 3}]})),
                [b0 + "%s: Forbidden: %s" % (key, words)] + more)
    # a property named only inside a junctor
    refused(d, crd(obj(a={"type": "object", "properties": {"b": {"type": "string"}}}) |
                   {"allOf": [{"properties": {"c": {"minLength": 1}}}]}),
            [V + ".properties[c]: Required value: because it is defined in " + V + ".allOf[0].properties[c]"])
    # value validations inside junctors are fine
    accepted(d, crd(obj(a={"type": "integer", "anyOf": [{"minimum": 1}, {"maximum": -1}],
                           "not": {"enum": [7]}, "oneOf": [{"multipleOf": 2}, {"multipleOf": 3}]})))


def t_int_or_string(d):
    ios = {"x-kubernetes-int-or-string": True}
    accepted(d, crd(obj(a=dict(ios, anyOf=[{"type": "integer"}, {"type": "string"}]))))
    accepted(d, crd(obj(a=dict(ios, allOf=[{"anyOf": [{"type": "integer"}, {"type": "string"}]},
                                           {"maxLength": 4}]))))
    accepted(d, crd(obj(a=dict(ios, **{"anyOf": [{"type": "integer"}, {"type": "string"}],
                                       "x-kubernetes-validations": [
        {"rule": "type(self) == int ? self >= 0 : self.matches('^[0-9]+%$')", "message": "m"}]}))))
    # anything added to the two branches breaks the exception
    refused(d, crd(obj(a=dict(ios, anyOf=[{"type": "integer", "minimum": 0}, {"type": "string"}]))),
            [V + ".properties[a].anyOf[0].type: Forbidden: must be empty to be structural",
             V + ".properties[a].anyOf[1].type: Forbidden: must be empty to be structural"])
    refused(d, crd(obj(a=dict(ios, anyOf=[{"type": "string"}, {"type": "integer"}]))),
            [V + ".properties[a].anyOf[0].type: Forbidden: must be empty to be structural",
             V + ".properties[a].anyOf[1].type: Forbidden: must be empty to be structural"])
    refused(d, crd(obj(a=dict(ios, allOf=[{"maxLength": 4}, {"anyOf": [{"type": "integer"}, {"type": "string"}]}]))),
            [V + ".properties[a].allOf[1].anyOf[0].type: Forbidden: must be empty to be structural",
             V + ".properties[a].allOf[1].anyOf[1].type: Forbidden: must be empty to be structural"])


def t_metadata(d):
    accepted(d, crd(obj(metadata={"type": "object"})))
    accepted(d, crd(obj(metadata={"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 20}, "generateName": {"type": "string", "pattern": "^a"}}})))
    refused(d, crd(obj(metadata={"type": "object", "properties": {"labels": {"type": "object"}}})),
            [V + ".properties[metadata]: Forbidden: must not specify anything other than name and generateName, "
                 "but metadata is implicitly specified"])
    refused(d, crd(obj(metadata={"type": "object", "description": "x"})),
            [V + ".properties[metadata]: Forbidden: must not specify anything other than name and generateName, "
                 "but metadata is implicitly specified"])
    refused(d, crd(obj(metadata={"type": "string"})),
            [V + '.properties[metadata].type: Invalid value: "string": must be object'])
    refused(d, crd(obj(kind={"type": "integer"}, apiVersion={"type": "number"})),
            [V + '.properties[kind].type: Invalid value: "integer": must be string',
             V + '.properties[apiVersion].type: Invalid value: "number": must be string'])
    refused(d, crd(obj(metadata={"type": "object"}, a={"type": "object"}) |
                   {"anyOf": [{"properties": {"metadata": {"maxProperties": 3}}}]}),
            [V + ".anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"])
    refused(d, crd(obj(metadata={"type": "object", "default": {"name": "x"}},
                       apiVersion={"type": "string", "default": "v1"})),
            [V + ".properties[metadata].default: Forbidden: must not be set in top-level metadata",
             V + ".properties[apiVersion].default: Forbidden: must not be set in top-level apiVersion"])


def t_defaults(d):
    refused(d, crd(obj(a={"type": "object", "properties": {"b": {"type": "string"}}, "default": {"b": "x", "c": 1}})),
            [V + '.properties[a].default: Invalid value: map[string]interface {}{"b":"x", "c":1}: '
                 'must not have unknown fields'])
    # a default under x-kubernetes-preserve-unknown-fields keeps its fields
    accepted(d, crd(obj(a={"type": "object", "x-kubernetes-preserve-unknown-fields": True, "default": {"c": 1}})))
    refused(d, crd(obj(a={"type": "string", "enum": ["x", "y"], "default": "z"})),
            [V + '.properties[a].default: Unsupported value: "z": supported values: "x", "y"'])
    # kube-openapi names the default's own root differently; the path and words are checked
    code, st, _ = d.req("POST", CRDS, crd(obj(a={"type": "integer", "minimum": 1, "default": 0})))
    check(code == 422 and [c["field"] for c in st["details"]["causes"]] == [V + ".properties[a].default"],
          "minimum default: %r" % st)
    check("Invalid value: 0: " in st["details"]["causes"][0]["message"] and
          "should be greater than or equal to 1" in st["details"]["causes"][0]["message"], "words: %r" % st)
    refused(d, crd(obj(a={"type": "object", "properties": {"b": {"type": "integer", "maximum": 3}},
                          "default": {"b": 4}})),
            [V + ".properties[a].default.b: Invalid value: 4: b in body should be less than or equal to 3"])
    refused(d, crd(obj(a={"type": "integer", "anyOf": [{"default": 1, "minimum": 0}]})),
            [V + ".properties[a].anyOf[0].default: Forbidden: must be undefined to be structural"])
    # defaults are only judged once the schema is structural
    refused(d, crd(obj(a={"type": "string", "enum": ["x"], "default": "z"}, b={})),
            [V + ".properties[b].type: Required value: must not be empty for specified object fields"])
    accepted(d, crd(obj(a={"type": "object", "default": {}, "properties": {"b": {"type": "integer", "default": 3}}})))


def t_list_types(d):
    def lst(**kw):
        return crd(obj(a=dict({"type": "array"}, **kw)))
    refused(d, lst(**{"x-kubernetes-list-type": "set", "items": {"type": "object"}}),
            [V + '.properties[a].items.x-kubernetes-map-type: Invalid value: "null": '
                 'must be atomic as item of a list with x-kubernetes-list-type=set'])
    accepted(d, lst(**{"x-kubernetes-list-type": "set",
                       "items": {"type": "object", "x-kubernetes-map-type": "atomic"}}))
    accepted(d, lst(**{"x-kubernetes-list-type": "set", "items": {"type": "string"}}))
    refused(d, lst(**{"x-kubernetes-list-type": "set", "items": {"type": "array", "x-kubernetes-list-type": "set",
                                                                 "items": {"type": "string"}}}),
            [V + '.properties[a].items.x-kubernetes-list-type: Invalid value: "set": '
                 'must be atomic as item of a list with x-kubernetes-list-type=set'])
    refused(d, lst(**{"x-kubernetes-list-type": "set", "items": {"type": "string", "nullable": True}}),
            [V + ".properties[a].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is set"])
    item = {"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}, "v": {"type": "string"}}}
    accepted(d, lst(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"], "items": item}))
    refused(d, lst(**{"x-kubernetes-list-type": "map", "items": item}),
            [V + ".properties[a].x-kubernetes-list-map-keys: Required value: must not be empty if "
                 "x-kubernetes-list-type is map"])
    refused(d, lst(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"], "items": {"type": "string"}}),
            [V + '.properties[a].items.type: Invalid value: "string": must be object if parent array\'s '
                 'x-kubernetes-list-type is map'])
    refused(d, lst(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["nope"], "items": item}),
            [V + '.properties[a].x-kubernetes-list-map-keys: Invalid value: []string{"nope"}: entries must all be '
                 'names of item properties'])
    refused(d, lst(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["v"], "items": item}),
            [V + ".properties[a].items.properties[v].default: Required value: this property is in "
                 "x-kubernetes-list-map-keys, so it must have a default or be a required property"])
    accepted(d, lst(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["v"],
                       "items": copy.deepcopy(item) | {"properties": {"k": {"type": "string"},
                                                                      "v": {"type": "string", "default": "d"}}}}))
    obj_key = {"type": "object", "required": ["k"], "properties": {"k": {"type": "object"}}}
    refused(d, lst(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"], "items": obj_key}),
            [V + '.properties[a].items.properties[k].type: Invalid value: "object": must be a scalar type if '
                 'parent array\'s x-kubernetes-list-type is map'])
    refused(d, lst(**{"x-kubernetes-list-map-keys": ["k"], "items": item}),
            [V + ".properties[a].x-kubernetes-list-type: Required value: must be map if "
                 "x-kubernetes-list-map-keys is non-empty"])
    refused(d, lst(**{"x-kubernetes-list-type": "atomic", "x-kubernetes-list-map-keys": ["k"], "items": item}),
            [V + '.properties[a].x-kubernetes-list-type: Invalid value: "atomic": must be map if '
                 'x-kubernetes-list-map-keys is non-empty'])
    refused(d, lst(**{"x-kubernetes-list-type": "bag", "items": {"type": "string"}}),
            [V + '.properties[a].x-kubernetes-list-type: Unsupported value: "bag": supported values: '
                 '"atomic", "set", "map"'])
    refused(d, crd(obj(a={"type": "string", "x-kubernetes-list-type": "set"})),
            [V + '.properties[a].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified'])
    refused(d, lst(**{"uniqueItems": True, "items": {"type": "string"}}),
            [V + ".properties[a].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime "
                 "complexity becomes quadratic"])


def t_list_type_objects(d):
    """Objects: the items of a set, and the keys of a map, are unique."""
    body = crd(obj(spec={"type": "object", "properties": {
        "days": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "conds": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                  "items": {"type": "object", "required": ["type"],
                            "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}}}))
    code, st, _ = d.req("POST", CRDS, body)
    check(code == 201, "create CRD: %d %r" % (code, st))
    base = "/apis/test.hull.dev/v1/things"
    code, st, _ = d.req("POST", base, {"apiVersion": "test.hull.dev/v1", "kind": "Thing", "metadata": {"name": "a"},
                                    "spec": {"days": ["Mon", "Tue", "Mon"],
                                             "conds": [{"type": "A", "status": "x"}, {"type": "A", "status": "y"}]}})
    check(code == 422, "duplicates accepted: %d" % code)
    got = sorted((c["reason"], c["field"], c["message"]) for c in st["details"]["causes"])
    want = sorted([("FieldValueDuplicate", "spec.days[2]", 'Duplicate value: "Mon"'),
                   ("FieldValueDuplicate", "spec.conds[1]", 'Duplicate value: map[string]interface {}{"type":"A"}')])
    check(got == want, "causes %r, want %r" % (got, want))
    code, st, _ = d.req("POST", base, {"apiVersion": "test.hull.dev/v1", "kind": "Thing", "metadata": {"name": "a"},
                                    "spec": {"days": ["Mon", "Tue"], "conds": [{"type": "A"}, {"type": "B"}]}})
    check(code == 201, "unique items refused: %d %r" % (code, st))
    d.req("DELETE", CRDS + "/things.test.hull.dev")


def t_validation_rules(d):
    refused(d, crd(obj(a={"type": "integer", "x-kubernetes-validations": [{"rule": " "}]})),
            [V + ".properties[a].x-kubernetes-validations[0].rule: Required value: rule is not specified"])
    refused(d, crd(obj(a={"type": "integer", "x-kubernetes-validations": [{"rule": "self > 0", "message": "a\nb"}]})),
            [V + '.properties[a].x-kubernetes-validations[0].message: Invalid value: "a\\nb": message must not contain '
                 'line breaks'])
    refused(d, crd(obj(a={"type": "integer", "x-kubernetes-validations": [{"rule": "self > 0 &&\nself < 9"}]})),
            [V + ".properties[a].x-kubernetes-validations[0].message: Required value: message must be specified "
                 "if rule contains line breaks"])
    refused(d, crd(obj(a={"type": "integer", "x-kubernetes-validations": [{"rule": "self > 0", "reason": "Nope"}]})),
            [V + '.properties[a].x-kubernetes-validations[0].reason: Unsupported value: "Nope": supported values: '
                 '"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"'])


def t_version_paths(d):
    bad = obj(a={})
    good = obj(a={"type": "string"})
    two = [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": good}},
           {"name": "v2", "served": True, "storage": False, "schema": {"openAPIV3Schema": bad}}]
    refused(d, crd(None, versions=two),
            ["spec.versions[1].schema.openAPIV3Schema.properties[a].type: Required value: must not be empty for "
             "specified object fields"])
    same = [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": bad}},
            {"name": "v2", "served": True, "storage": False, "schema": {"openAPIV3Schema": bad}}]
    refused(d, crd(None, versions=same),
            [V + ".properties[a].type: Required value: must not be empty for specified object fields"])


def t_update_refused(d):
    body = crd(obj(a={"type": "string"}), name="updates")
    code, st, _ = d.req("POST", CRDS, body)
    check(code == 201, "create: %d" % code)
    st["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["a"] = {}
    code, st2, _ = d.req("PUT", CRDS + "/updates.test.hull.dev", st)
    check(code == 422, "non-structural update accepted: %d" % code)
    check(texts(st2) == [V + ".properties[a].type: Required value: must not be empty for specified object fields"],
          "causes %r" % texts(st2))
    code, cur, _ = d.req("GET", CRDS + "/updates.test.hull.dev")
    check(cur["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["a"] == {"type": "string"},
          "the refused update changed the CRD")
    d.req("DELETE", CRDS + "/updates.test.hull.dev")


def t_deploy_crds_accepted(d):
    files = sorted(glob.glob(os.path.join(SRC, "deploy", "crds", "*.yaml")))
    check(len(files) >= 2, "no CRDs under deploy/crds")
    for f in files:
        body = yaml_load(YAML2JSON, f)
        code, st, _ = d.req("POST", CRDS, body)
        check(code == 201, "%s: HTTP %d %s" % (f, code, json.dumps(st)[:800]))


OLD_OSES_WANT = [
    V + ".properties[spec].properties[strategy].properties[batches].items.properties[nodes].anyOf[0].type: "
        "Forbidden: must be empty to be structural",
    V + ".properties[spec].properties[strategy].properties[batches].items.properties[nodes].anyOf[1].type: "
        "Forbidden: must be empty to be structural",
    V + ".properties[spec].properties[strategy].properties[maxUnavailable].anyOf[0].type: "
        "Forbidden: must be empty to be structural",
    V + ".properties[spec].properties[strategy].properties[maxUnavailable].anyOf[1].type: "
        "Forbidden: must be empty to be structural"]


def t_old_oses_refused(d):
    body = yaml_load(YAML2JSON, os.path.join(SRC, "tests", "kube", "fixtures", "oses-crd-nonstructural.yaml"))
    st = refused(d, body, OLD_OSES_WANT)
    # the order of the real server (sorted), not just the same set
    check(texts(st) == OLD_OSES_WANT, "order %r" % texts(st))


def t_old_oses_at_start():
    p = subprocess.run([sys.executable, APISERVER, "--port", "0", "--yaml2json", YAML2JSON, "--crd",
                        os.path.join(SRC, "tests", "kube", "fixtures", "oses-crd-nonstructural.yaml")],
                       capture_output=True, timeout=30)
    check(p.returncode != 0, "the double started with a non-structural CRD")
    check(b"must be empty to be structural" in p.stderr, "stderr: %r" % p.stderr[-400:])


def t_cel_evaluated(d):
    """A value only a CEL rule refuses is refused as a real server refuses it
    (every rule: tests/kube/test-cel.py)."""
    base = "/apis/hull.dev/v1alpha1/oses"
    code, st, _ = d.req("POST", base, {"apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": "cel"},
                                    "spec": {"version": "1", "operation": "rollback",
                                             "strategy": {"maxUnavailable": "120%"}}})
    check(code == 422, "HTTP %d %r" % (code, st))
    check(texts(st) == ['spec.strategy.maxUnavailable: Invalid value: "": must be a count from 0 to 1000000000 or '
                        'a percentage from 0% to 100%'], "causes %r" % texts(st))
    # what the OpenAPI schema itself checks is still refused
    code, st, _ = d.req("POST", base, {"apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": "cel2"},
                                    "spec": {"version": "1", "operation": "rollback",
                                             "strategy": {"maxUnavailable": True}}})
    check(code == 422, "a boolean maxUnavailable was accepted: %d" % code)


def t_gates_admission(d):
    """spec.strategy.after, spec.strategy.minImageAgeSeconds and
    spec.image.created: accepted with their defaults, refused in the forms
    the OpenAPI schema states. (The CEL rules: tests/kube/test-cel.py.)"""
    base = "/apis/hull.dev/v1alpha1/oses"

    def os_obj(name, strategy=None, image=None):
        spec = {"version": "2.0.0", "operation": "upgrade",
                "image": {"url": "https://u.example/2.hull", "sha256": "ab" * 32}}
        spec["image"].update(image or {})
        if strategy is not None:
            spec["strategy"] = strategy
        return {"apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": name}, "spec": spec}

    code, st, _ = d.req("POST", base, os_obj("production", {"after": {"os": "staging.eu-1"}, "minImageAgeSeconds": 3600},
                                          {"created": "2026-12-03T10:00:00Z"}))
    check(code == 201, "valid gates: HTTP %d %r" % (code, st))
    check(st["spec"]["strategy"]["after"] == {"os": "staging.eu-1", "soakSeconds": 0},
          "soakSeconds defaults to 0: %r" % st["spec"]["strategy"])
    check(st["spec"]["image"]["created"] == "2026-12-03T10:00:00Z", "created kept: %r" % st["spec"]["image"])
    code, st, _ = d.req("POST", base, os_obj("plain"))
    check(code == 201 and st["spec"]["strategy"].get("minImageAgeSeconds") == 0
          and "after" not in st["spec"]["strategy"], "defaults without gates: %r" % st["spec"].get("strategy"))
    code, st, _ = d.req("POST", base, os_obj("edges", {"after": {"os": "a", "soakSeconds": 31536000}},
                                          {"created": "2028-02-29T23:59:59Z"}))
    check(code == 201, "edges: HTTP %d %r" % (code, st))
    for name in ("production", "plain", "edges"):
        d.req("DELETE", base + "/" + name)

    P = "spec.strategy.after"
    bad = [
        ({"after": {}}, None, P + ".os: Required value"),
        ({"after": {"soakSeconds": 5}}, None, P + ".os: Required value"),
        ({"after": {"os": "Staging"}}, None, P + ".os: Invalid value"),
        ({"after": {"os": "a..b"}}, None, P + ".os: Invalid value"),
        ({"after": {"os": "-a"}}, None, P + ".os: Invalid value"),
        ({"after": {"os": "a" * 254}}, None, P + ".os: Too long"),
        ({"after": {"os": ""}}, None, P + ".os: Invalid value"),
        ({"after": {"os": "s", "soakSeconds": 31536001}}, None, P + ".soakSeconds: Invalid value"),
        ({"after": {"os": "s", "soakSeconds": -1}}, None, P + ".soakSeconds: Invalid value"),
        ({"after": {"os": "s", "soakSeconds": "5"}}, None, P + ".soakSeconds: Invalid value"),
        ({"after": "staging"}, None, P + ": Invalid value"),
        ({"minImageAgeSeconds": -1}, None, "spec.strategy.minImageAgeSeconds: Invalid value"),
        (None, {"created": "2026-12-03T10:00:00+01:00"}, "spec.image.created: "),
        (None, {"created": "2026-12-03T10:00:00.5Z"}, "spec.image.created: "),
        (None, {"created": "2026-12-03 10:00:00Z"}, "spec.image.created: Invalid value"),
        (None, {"created": "2026-13-03T10:00:00Z"}, "spec.image.created: Invalid value"),
        (None, {"created": 1796292000}, "spec.image.created: Invalid value"),
    ]
    for i, (strategy, image, want) in enumerate(bad):
        code, st, _ = d.req("POST", base, os_obj("bad-%d" % i, strategy, image))
        check(code == 422, "%r %r: HTTP %d (accepted)" % (strategy, image, code))
        check(any(want in t for t in texts(st)), "%r %r: causes %r, want %r" % (strategy, image, texts(st), want))

    # The self-reference rule sits at the root, the only place CEL sees
    # metadata.name, and points its error at the field.
    body = yaml_load(YAML2JSON, os.path.join(SRC, "deploy", "crds", "hull.dev_oses.yaml"))
    root = body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = root.get("x-kubernetes-validations") or []
    check(any("self.metadata.name" in r["rule"] and r.get("fieldPath") == ".spec.strategy.after.os" for r in rules),
          "root rule on after.os: %r" % rules)


def t_hooks_admission(d):
    """spec.hooks and spec.verify: defaults filled in (also inside the hook
    lists), refused in the forms the OpenAPI schema states. The CEL
    one-of rules: tests/kube/test-cel.py."""
    base = "/apis/hull.dev/v1alpha1/oses"

    def os_obj(name, hooks=None, verify=None):
        spec = {"version": "2.0.0", "operation": "upgrade",
                "image": {"url": "https://u.example/2.hull", "sha256": "ab" * 32}}
        if hooks is not None:
            spec["hooks"] = hooks
        if verify is not None:
            spec["verify"] = verify
        return {"apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": name}, "spec": spec}

    code, st, _ = d.req("POST", base, os_obj("hooked", {
        "preDrain": [{"exec": "ceph-noout"}, {"waitFor": {"label": "example.com/ok", "value": "yes"},
                                              "timeoutSeconds": 60}],
        "postBoot": [{"waitFor": {"annotation": "example.com/smoke"}}]},
        {"podSelector": {"matchLabels": {"tier": "node"},
                         "matchExpressions": [{"key": "app", "operator": "In", "values": ["cni"]}]}}))
    check(code == 201, "valid hooks and verify: HTTP %d %r" % (code, st))
    check(st["spec"]["hooks"]["preDrain"][0] == {"exec": "ceph-noout", "timeoutSeconds": 300},
          "a hook's timeoutSeconds defaults to 300: %r" % st["spec"]["hooks"])
    check(st["spec"]["verify"]["timeoutSeconds"] == 600, "verify.timeoutSeconds defaults to 600: %r" % st["spec"]["verify"])
    code, st, _ = d.req("POST", base, os_obj("plain"))
    check(code == 201 and st["spec"].get("verify") == {"timeoutSeconds": 600} and "hooks" not in st["spec"],
          "without them: verify defaulted, no hooks: %r" % st["spec"])
    for name in ("hooked", "plain"):
        d.req("DELETE", base + "/" + name)

    H = "spec.hooks.preDrain[0]"
    bad = [
        ({"preDrain": [{"exec": "../sh"}]}, None, H + ".exec: Invalid value"),
        ({"preDrain": [{"exec": "a" * 65}]}, None, H + ".exec: Too long"),
        ({"preDrain": [{"exec": "a", "timeoutSeconds": 0}]}, None, H + ".timeoutSeconds: Invalid value"),
        ({"preDrain": [{"exec": "a", "timeoutSeconds": 86401}]}, None, H + ".timeoutSeconds: Invalid value"),
        ({"preDrain": [{"exec": "a"}] * 9}, None, "spec.hooks.preDrain: Too many"),
        ({"preDrain": [{"waitFor": {"label": "k", "value": "v" * 1025}}]}, None, H + ".waitFor.value: Too long"),
        ({"preDrain": {"exec": "a"}}, None, "spec.hooks.preDrain: Invalid value"),
        (None, {"timeoutSeconds": 5}, "spec.verify.timeoutSeconds: Invalid value"),
        (None, {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}},
         "spec.verify.podSelector.matchExpressions[0].operator: Unsupported value"),
        (None, {"podSelector": {"matchExpressions": [{"operator": "Exists"}]}},
         "spec.verify.podSelector.matchExpressions[0].key: Required value"),
        (None, {"podSelector": {"matchLabels": {"a": 1}}}, "spec.verify.podSelector.matchLabels.a: Invalid value"),
    ]
    for i, (hooks, verify, want) in enumerate(bad):
        code, st, _ = d.req("POST", base, os_obj("bad-%d" % i, hooks, verify))
        check(code == 422, "%r %r: HTTP %d (accepted)" % (hooks, verify, code))
        check(any(want in t for t in texts(st)), "%r %r: causes %r, want %r" % (hooks, verify, texts(st), want))


def t_cel_twins():
    """Every CEL rule message in deploy/crds is also a message of the
    operator's spec check (src/shared/osspec.c), word for word: the
    operator checks each spec again (an object stored before the CRD had a
    rule, a rule ratcheted on update), and says it in the CRD's words."""
    src = open(os.path.join(SRC, "src", "shared", "osspec.c")).read()
    # the C string literals, adjacent ones joined, escapes of '%' undone
    literals = [re.sub(r'"\s*"', "", m).replace("%%", "%")
                for m in re.findall(r'"(?:[^"\\\n]|\\.)*"(?:\s*"(?:[^"\\\n]|\\.)*")*', src)]
    literals = [bytes(x[1:-1], "utf-8").decode("unicode_escape") for x in literals]
    found = 0
    for f in sorted(glob.glob(os.path.join(SRC, "deploy", "crds", "*.yaml"))):
        stack = [yaml_load(YAML2JSON, f)]
        while stack:
            x = stack.pop()
            if isinstance(x, dict):
                for r in x.get("x-kubernetes-validations") or []:
                    found += 1
                    m = r.get("message")
                    check(m, "%s: rule %r has no message" % (f, r.get("rule")))
                    check(any(m in lit for lit in literals),
                          "%s: CEL message %r has no twin in src/shared/osspec.c" % (os.path.basename(f), m))
                stack.extend(x.values())
            elif isinstance(x, list):
                stack.extend(x)
    check(found >= 6, "only %d CEL rules found" % found)


def main():
    d = Double(APISERVER, YAML2JSON, TMP)
    try:
        run("type-required", t_type_required, d)
        run("junctors-value-validations-only", t_junctors, d)
        run("int-or-string-exception", t_int_or_string, d)
        run("metadata-restrictions", t_metadata, d)
        run("defaults", t_defaults, d)
        run("list-type-schema-rules", t_list_types, d)
        run("list-type-objects-unique", t_list_type_objects, d)
        run("validation-rule-entries", t_validation_rules, d)
        run("per-version-paths", t_version_paths, d)
        run("update-refused", t_update_refused, d)
        run("old-oses-crd-refused", t_old_oses_refused, d)
        run("deploy-crds-accepted", t_deploy_crds_accepted, d)
        run("cel-evaluated", t_cel_evaluated, d)
        run("promotion-and-image-age-admission", t_gates_admission, d)
        run("hooks-and-verify-admission", t_hooks_admission, d)
    finally:
        d.stop()
    run("old-oses-crd-refused-at-start", t_old_oses_at_start)
    run("cel-rules-have-operator-twins", t_cel_twins)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
