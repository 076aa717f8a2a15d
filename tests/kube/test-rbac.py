#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Unit tests of tests/kube/rbac.py: the request -> RBAC attributes mapping
and the rule evaluation, with hand-written request lists, against
hand-written policies and against the real deploy/ manifests.

    test-rbac.py --yaml2json build/tests/kube/yaml2json --deploy deploy
"""

import argparse
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rbac  # noqa: E402

ARGS = None
OPERATOR = "system:serviceaccount:hull-system:hull-operator"
NODE = "system:serviceaccount:hull-system:hull-node"


def req(method, path, query="", ua="test/1"):
    return {"method": method, "path": path, "query": query, "status": 200, "userAgent": ua}


def attrs(method, path, query=""):
    a = rbac.request_attributes(req(method, path, query))
    return (a.verb, a.api_group, a.resource, a.subresource, a.namespace, a.name) if a.resource_request \
        else (a.verb, a.path)


# What src/operator/ does over a rollout, by the code (informers, planner
# patches, status, events, leader election).
OPERATOR_REQUESTS = [
    req("GET", "/api/v1/nodes", "limit=500"),
    req("GET", "/api/v1/nodes", "watch=1&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds=400"),
    req("GET", "/apis/hull.dev/v1alpha1/oses", "limit=500"),
    req("GET", "/apis/hull.dev/v1alpha1/oses", "watch=1&resourceVersion=10&allowWatchBookmarks=true"),
    req("GET", "/apis/hull.dev/v1alpha1/osnodes", "limit=500&continue=abc%3D"),
    req("GET", "/apis/hull.dev/v1alpha1/osnodes", "watch=true&resourceVersion=11"),
    req("GET", "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/hull-operator"),
    req("POST", "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases"),
    req("PUT", "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/hull-operator"),
    req("PATCH", "/api/v1/nodes/n1"),
    req("PATCH", "/apis/hull.dev/v1alpha1/oses/workers/status"),
    req("POST", "/apis/events.k8s.io/v1/namespaces/default/events"),
]

# People (deploy/people-rbac.yaml): what hullctl cluster does, by its code
# (src/ctl/ctl-cluster.c), and the kubectl uses docs/ name.
VIEWER_REQUESTS = [
    req("GET", "/apis/hull.dev/v1alpha1/oses", "limit=500"),                 # hullctl cluster status
    req("GET", "/apis/hull.dev/v1alpha1/osnodes", "limit=500"),              # status OS, nodes
    req("GET", "/api/v1/nodes", "labelSelector=hull.dev%2Funmanaged%21%3Dtrue&limit=500"),
    req("GET", "/apis/hull.dev/v1alpha1/osnodes/n1"),                        # kubectl get osnode n1 -o yaml
    req("GET", "/apis/hull.dev/v1alpha1/oses/workers"),                      # kubectl get os workers
    req("GET", "/apis/hull.dev/v1alpha1/oses", "watch=1&resourceVersion=7"),  # kubectl get os -w
    req("GET", "/apis/hull.dev/v1alpha1/osnodes", "watch=1&resourceVersion=7"),
]
ADMIN_REQUESTS = VIEWER_REQUESTS + [
    req("PATCH", "/apis/hull.dev/v1alpha1/oses/workers"),                    # upgrade, rollback, pause, resume
    req("PUT", "/apis/hull.dev/v1alpha1/oses/workers"),                      # approve
    req("POST", "/apis/hull.dev/v1alpha1/oses"),                             # kubectl apply -f (new)
    req("DELETE", "/apis/hull.dev/v1alpha1/oses/workers"),                   # kubectl delete os
    req("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n1"),                      # retry: spec.retry
    req("GET", "/api/v1/nodes/n1"),                                          # retry: the quarantine label
    req("PATCH", "/api/v1/nodes/n1"),
]
PERSON = "people:person"


def bound_to(objects, role):
    """The deploy/ objects plus a binding of the ClusterRole to PERSON, as a
    site would bind its group."""
    return objects + [{"kind": "ClusterRoleBinding", "metadata": {"name": "test-" + role},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                       "subjects": [{"kind": "ServiceAccount", "namespace": "people", "name": "person"}]}]

# What src/node/ does: ensure the OSNode, informers with a name field
# selector, cordon, drain (list + evictions), status, events.
NODE_REQUESTS = [
    req("GET", "/apis/hull.dev/v1alpha1/osnodes/n1"),
    req("POST", "/apis/hull.dev/v1alpha1/osnodes"),
    req("GET", "/api/v1/nodes", "fieldSelector=metadata.name%3Dn1&limit=500"),
    req("GET", "/api/v1/nodes", "fieldSelector=metadata.name%3Dn1&watch=1&resourceVersion=5"),
    req("GET", "/apis/hull.dev/v1alpha1/osnodes", "fieldSelector=metadata.name%3Dn1&limit=500"),
    req("GET", "/apis/hull.dev/v1alpha1/osnodes", "fieldSelector=metadata.name%3Dn1&watch=1&resourceVersion=5"),
    req("PATCH", "/api/v1/nodes/n1"),
    req("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1&limit=500"),
    req("POST", "/api/v1/namespaces/apps/pods/web-1/eviction"),
    req("POST", "/api/v1/namespaces/kube-system/pods/dns-2/eviction"),
    req("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n1/status"),
    req("POST", "/apis/events.k8s.io/v1/namespaces/default/events"),
]


class Mapping(unittest.TestCase):
    def test_verbs(self):
        self.assertEqual(attrs("GET", "/api/v1/nodes"), ("list", "", "nodes", "", "", ""))
        self.assertEqual(attrs("GET", "/api/v1/nodes", "watch=1&resourceVersion=3"),
                         ("watch", "", "nodes", "", "", ""))
        self.assertEqual(attrs("GET", "/api/v1/nodes", "watch=false"), ("list", "", "nodes", "", "", ""))
        self.assertEqual(attrs("GET", "/api/v1/watch/nodes"), ("watch", "", "nodes", "", "", ""))
        self.assertEqual(attrs("GET", "/api/v1/nodes/n1"), ("get", "", "nodes", "", "", "n1"))
        self.assertEqual(attrs("HEAD", "/api/v1/nodes/n1"), ("get", "", "nodes", "", "", "n1"))
        self.assertEqual(attrs("PUT", "/api/v1/nodes/n1"), ("update", "", "nodes", "", "", "n1"))
        self.assertEqual(attrs("PATCH", "/api/v1/nodes/n1"), ("patch", "", "nodes", "", "", "n1"))
        self.assertEqual(attrs("DELETE", "/api/v1/nodes/n1"), ("delete", "", "nodes", "", "", "n1"))
        self.assertEqual(attrs("DELETE", "/api/v1/namespaces/a/pods"),
                         ("deletecollection", "", "pods", "", "a", ""))
        self.assertEqual(attrs("POST", "/api/v1/namespaces/a/pods"), ("create", "", "pods", "", "a", ""))

    def test_groups_namespaces_subresources(self):
        self.assertEqual(attrs("POST", "/api/v1/namespaces/ns/pods/p/eviction"),
                         ("create", "", "pods", "eviction", "ns", "p"))
        self.assertEqual(attrs("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n1/status"),
                         ("patch", "hull.dev", "osnodes", "status", "", "n1"))
        self.assertEqual(attrs("GET", "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/l"),
                         ("get", "coordination.k8s.io", "leases", "", "hull-system", "l"))
        # The namespace object itself, and its own subresources.
        self.assertEqual(attrs("GET", "/api/v1/namespaces/foo"), ("get", "", "namespaces", "", "foo", "foo"))
        self.assertEqual(attrs("PUT", "/api/v1/namespaces/foo/finalize"),
                         ("update", "", "namespaces", "finalize", "foo", "foo"))
        self.assertEqual(attrs("GET", "/api/v1/namespaces"), ("list", "", "namespaces", "", "", ""))

    def test_field_selector_name(self):
        # list/watch with metadata.name=X are authorized as that name...
        self.assertEqual(attrs("GET", "/api/v1/nodes", "fieldSelector=metadata.name%3Dn1&watch=1"),
                         ("watch", "", "nodes", "", "", "n1"))
        self.assertEqual(attrs("GET", "/api/v1/nodes", "fieldSelector=metadata.name%3D%3Dn2"),
                         ("list", "", "nodes", "", "", "n2"))
        # ... not other fields, and not a negation.
        self.assertEqual(attrs("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1"),
                         ("list", "", "pods", "", "", ""))
        self.assertEqual(attrs("GET", "/api/v1/nodes", "fieldSelector=metadata.name!%3Dn1"),
                         ("list", "", "nodes", "", "", ""))

    def test_non_resource(self):
        for p in ("/apis", "/api", "/api/v1", "/apis/hull.dev", "/apis/hull.dev/v1alpha1", "/version",
                  "/healthz", "/metrics"):
            a = rbac.request_attributes(req("GET", p))
            self.assertFalse(a.resource_request, p)
            self.assertEqual(a.verb, "get")

    def test_query_in_path(self):
        a = rbac.request_attributes({"method": "GET", "path": "/api/v1/nodes?watch=true"})
        self.assertEqual(a.verb, "watch")


POLICY = [
    {"kind": "ClusterRole", "metadata": {"name": "reader"},
     "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
               {"apiGroups": ["hull.dev"], "resources": ["*/status"], "verbs": ["patch"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "reader"},
     "roleRef": {"kind": "ClusterRole", "name": "reader", "apiGroup": "rbac.authorization.k8s.io"},
     "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]},
    # A ClusterRole bound by a RoleBinding: only in that namespace.
    {"kind": "ClusterRole", "metadata": {"name": "pod-deleter"},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}]},
    {"kind": "RoleBinding", "metadata": {"name": "pd", "namespace": "apps"},
     "roleRef": {"kind": "ClusterRole", "name": "pod-deleter"},
     "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]},
    # resourceNames on list/watch: usable only with a name field selector.
    {"kind": "Role", "metadata": {"name": "one-cm", "namespace": "ns"},
     "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"],
                "verbs": ["get", "list", "watch", "update"]}]},
    {"kind": "RoleBinding", "metadata": {"name": "one-cm", "namespace": "ns"},
     "roleRef": {"kind": "Role", "name": "one-cm"},
     "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ns"}]},
    # Aggregation.
    {"kind": "ClusterRole", "metadata": {"name": "agg"},
     "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}, "rules": []},
    {"kind": "ClusterRole", "metadata": {"name": "part", "labels": {"agg": "yes"}},
     "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "agg"},
     "roleRef": {"kind": "ClusterRole", "name": "agg"},
     "subjects": [{"kind": "User", "name": "system:serviceaccount:ns:sa"}]},
    # Bound to somebody else.
    {"kind": "ClusterRole", "metadata": {"name": "admin-ish"},
     "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "admin-ish"},
     "roleRef": {"kind": "ClusterRole", "name": "admin-ish"},
     "subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": "ns"}]},
]


def violations(requests, sa="ns:sa", objects=POLICY):
    return rbac.check_requests(requests, None, sa, objects=objects)


class Evaluation(unittest.TestCase):
    def test_allowed(self):
        self.assertEqual(violations([req("GET", "/api/v1/nodes/n1"), req("GET", "/api/v1/nodes"),
                                     req("GET", "/api/v1/watch/nodes"),
                                     req("PATCH", "/apis/hull.dev/v1alpha1/oses/x/status"),
                                     req("DELETE", "/api/v1/namespaces/apps/pods/p"),
                                     req("GET", "/apis/apps/v1/deployments")]), [])

    def test_denied(self):
        v = violations([req("PUT", "/api/v1/nodes/n1"), req("GET", "/api/v1/pods"),
                        req("GET", "/apis/apps/v1/namespaces/a/deployments/d")])
        self.assertEqual([(x.attributes.verb, x.attributes.resource) for x in v],
                         [("update", "nodes"), ("list", "pods"), ("get", "deployments")])
        self.assertIn("update nodes name=n1 namespace=(cluster) is not allowed for ns:sa", str(v[0]))

    def test_wrong_group(self):
        v = violations([req("GET", "/apis/example.com/v1/nodes")])
        self.assertEqual(len(v), 1)

    def test_namespace_scope(self):
        self.assertEqual(violations([req("DELETE", "/api/v1/namespaces/apps/pods/p")]), [])
        v = violations([req("DELETE", "/api/v1/namespaces/kube-system/pods/p")])
        self.assertEqual(len(v), 1)
        self.assertEqual(v[0].attributes.namespace, "kube-system")
        # A RoleBinding never grants cluster-scoped access.
        self.assertEqual(len(violations([req("DELETE", "/api/v1/pods/p")])), 1)

    def test_subresource(self):
        # */status covers every status subresource of the group, not the object.
        self.assertEqual(violations([req("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n/status")]), [])
        self.assertEqual(len(violations([req("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n")])), 1)
        self.assertEqual(len(violations([req("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n/scale")])), 1)
        # nodes does not cover nodes/status.
        self.assertEqual(len(violations([req("GET", "/api/v1/nodes/n1/status")])), 1)

    def test_resource_names(self):
        ok = [req("GET", "/api/v1/namespaces/ns/configmaps/cfg"),
              req("PUT", "/api/v1/namespaces/ns/configmaps/cfg"),
              req("GET", "/api/v1/namespaces/ns/configmaps", "fieldSelector=metadata.name%3Dcfg&watch=1")]
        self.assertEqual(violations(ok), [])
        bad = [req("GET", "/api/v1/namespaces/ns/configmaps/other"),
               req("GET", "/api/v1/namespaces/ns/configmaps"),
               req("GET", "/api/v1/namespaces/ns/configmaps", "fieldSelector=metadata.name%3Dother"),
               req("POST", "/api/v1/namespaces/ns/configmaps"),
               req("GET", "/api/v1/namespaces/other/configmaps/cfg")]
        self.assertEqual(len(violations(bad)), 5)

    def test_other_subjects(self):
        # Group system:serviceaccounts:ns binds every SA of ns, but the
        # admin-ish role is bound to "other" only.
        self.assertEqual(violations([req("GET", "/api/v1/namespaces/ns/configmaps/cfg")], sa="ns:x"), [])
        self.assertEqual(len(violations([req("DELETE", "/api/v1/nodes/n1")])), 1)
        self.assertEqual(violations([req("DELETE", "/api/v1/nodes/n1")], sa="ns:other"), [])
        v = violations([req("GET", "/api/v1/nodes")], sa="elsewhere:nobody")
        self.assertIn("no Role or ClusterRole is bound", str(v[0]))

    def test_ignored_and_builtin(self):
        self.assertEqual(violations([req("GET", "/_double/requests"), req("POST", "/_double/fail"),
                                     req("GET", "/version"), req("GET", "/apis"),
                                     req("GET", "/apis/hull.dev/v1alpha1")]), [])
        self.assertEqual(len(violations([req("GET", "/metrics")])), 1)
        self.assertEqual(len(violations([req("POST", "/apis")])), 1)

    def test_duplicates_reported_once(self):
        self.assertEqual(len(violations([req("PUT", "/api/v1/nodes/n1")] * 3)), 1)

    def test_unused(self):
        w = rbac.unused_rules([req("GET", "/api/v1/nodes")], None, "ns:sa", objects=POLICY)
        text = "\n".join(w)
        self.assertIn("grants get on nodes", text)
        self.assertIn("grants watch on nodes", text)
        self.assertNotIn("grants list on nodes ", text)
        self.assertIn("grants patch on */status.hull.dev", text)
        self.assertIn("grants delete on pods", text)
        # Aggregated rules count too.
        self.assertIn("grants list on deployments.apps", text)
        warnings = []
        rbac.check_requests([req("GET", "/api/v1/nodes")], None, "ns:sa", objects=POLICY, warnings=warnings)
        self.assertEqual(warnings, w)


class Deploy(unittest.TestCase):
    """The real manifests against what the programs do (by their code)."""

    @classmethod
    def setUpClass(cls):
        cls.objects = rbac.load_objects(ARGS.deploy, ARGS.yaml2json)

    def check(self, requests, sa):
        return rbac.check_requests(requests, None, sa, objects=self.objects)

    def test_loads(self):
        kinds = sorted({o["kind"] for o in self.objects})
        for k in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "DaemonSet",
                  "Deployment", "Namespace"):
            self.assertIn(k, kinds)

    def test_operator_exact(self):
        warnings = []
        v = rbac.check_requests(OPERATOR_REQUESTS, None, OPERATOR, objects=self.objects, warnings=warnings)
        self.assertEqual([str(x) for x in v], [])
        self.assertEqual(warnings, [], "operator-rbac.yaml grants more than the operator uses")

    def test_node_exact(self):
        warnings = []
        v = rbac.check_requests(NODE_REQUESTS, None, NODE, objects=self.objects, warnings=warnings)
        self.assertEqual([str(x) for x in v], [])
        self.assertEqual(warnings, [], "node-rbac.yaml grants more than hull-node uses")

    def test_unused_detected(self):
        w = rbac.unused_rules([r for r in OPERATOR_REQUESTS if r["method"] != "POST" or "leases" not in r["path"]],
                              None, OPERATOR, objects=self.objects)
        self.assertEqual(len(w), 1)
        self.assertIn("create on leases.coordination.k8s.io", w[0])

    def test_operator_denied(self):
        bad = [
            req("PUT", "/api/v1/nodes/n1"),                                     # update, not patch
            req("GET", "/api/v1/nodes/n1"),                                     # no get
            req("PATCH", "/apis/hull.dev/v1alpha1/oses/workers"),               # spec, not status
            req("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n1/status"),          # hull-node's job
            req("GET", "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/other"),   # resourceNames
            req("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/hull-operator"),  # namespace
            req("POST", "/apis/events.k8s.io/v1/namespaces/hull-system/events"),   # only "default"
            req("POST", "/api/v1/namespaces/apps/pods/p/eviction"),             # hull-node's job
            req("GET", "/api/v1/secrets"),
        ]
        v = self.check(bad, OPERATOR)
        self.assertEqual(len(v), len(bad), [str(x) for x in v])

    def test_node_denied(self):
        bad = [
            req("DELETE", "/api/v1/namespaces/apps/pods/web-1"),                # evict, never delete
            req("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1&watch=1"),   # no watch on pods
            req("POST", "/api/v1/namespaces/apps/pods/web-1/binding"),
            req("PUT", "/apis/hull.dev/v1alpha1/osnodes/n1/status"),           # patch only
            req("PATCH", "/apis/hull.dev/v1alpha1/oses/workers/status"),       # the operator's
            req("PATCH", "/api/v1/nodes/n1/status"),                           # kubelet's
            req("GET", "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/hull-operator"),
            req("POST", "/apis/events.k8s.io/v1/namespaces/apps/events"),
            req("DELETE", "/apis/hull.dev/v1alpha1/osnodes/n1"),
        ]
        v = self.check(bad, NODE)
        self.assertEqual(len(v), len(bad), [str(x) for x in v])

    def test_by_user_agent(self):
        agents = {"hull-operator/": OPERATOR, "hull-node/": NODE}
        log = ([dict(r, userAgent="hull-operator/0.1.0") for r in OPERATOR_REQUESTS] +
               [dict(r, userAgent="hull-node/0.1.0") for r in NODE_REQUESTS] +
               [req("POST", "/api/v1/nodes", ua="curl/7.88.1"), req("GET", "/_double/requests")])
        w = []
        self.assertEqual(rbac.check_by_user_agent(log, None, agents, objects=self.objects, warnings=w), [])
        self.assertEqual(w, [])
        # The operator evicting is hull-node's right, not its own.
        bad = log + [req("POST", "/api/v1/namespaces/a/pods/p/eviction", ua="hull-operator/0.1.0")]
        v = rbac.check_by_user_agent(bad, None, agents, objects=self.objects)
        self.assertEqual([x.attributes.subresource for x in v], ["eviction"])
        # Unattributed (the library's default agent): allowed if either may.
        anon = [req("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1", ua="hull/0.1.0"),
                req("DELETE", "/api/v1/nodes/n1", ua="hull/0.1.0")]
        v = rbac.check_by_user_agent(anon, None, agents, objects=self.objects)
        self.assertEqual([x.attributes.verb for x in v], ["delete"])
        self.assertIn("not allowed for any of", str(v[0]))

    def test_people_exact(self):
        for role, reqs in (("hull-fleet-viewer", VIEWER_REQUESTS), ("hull-fleet-admin", ADMIN_REQUESTS)):
            warnings = []
            v = rbac.check_requests(reqs, None, PERSON, objects=bound_to(self.objects, role), warnings=warnings)
            self.assertEqual([str(x) for x in v], [], role)
            self.assertEqual(warnings, [], "people-rbac.yaml: %s grants more than is used" % role)

    def test_people_denied(self):
        viewer_bad = [r for r in ADMIN_REQUESTS if r not in VIEWER_REQUESTS]
        v = rbac.check_requests(viewer_bad, None, PERSON, objects=bound_to(self.objects, "hull-fleet-viewer"))
        self.assertEqual(len(v), len(viewer_bad), [str(x) for x in v])
        bad = [
            req("PATCH", "/apis/hull.dev/v1alpha1/oses/workers/status"),     # the operator's
            req("PATCH", "/apis/hull.dev/v1alpha1/osnodes/n1/status"),       # hull-node's
            req("DELETE", "/apis/hull.dev/v1alpha1/osnodes/n1"),
            req("PUT", "/api/v1/nodes/n1"),
            req("DELETE", "/api/v1/nodes/n1"),
            req("POST", "/api/v1/namespaces/apps/pods/p/eviction"),
            req("GET", "/api/v1/namespaces/hull-system/secrets"),
        ]
        v = rbac.check_requests(bad, None, PERSON, objects=bound_to(self.objects, "hull-fleet-admin"))
        self.assertEqual(len(v), len(bad), [str(x) for x in v])

    def test_yaml_split(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x.yaml")
            with open(p, "w") as f:
                f.write("# only a comment\n---\nkind: Role\nmetadata:\n  name: a\n  namespace: n\n"
                        "rules: []\n---\n---\nkind: ClusterRole\nmetadata: {name: b}\nrules:\n- verbs: [get]\n"
                        "  apiGroups: ['']\n  resources: [pods]\n  # --- not a separator\n")
            objs = rbac.load_objects(p, ARGS.yaml2json)
            self.assertEqual([(o["kind"], o["metadata"]["name"]) for o in objs], [("Role", "a"), ("ClusterRole", "b")])


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--yaml2json", required=True)
    ap.add_argument("--deploy", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
