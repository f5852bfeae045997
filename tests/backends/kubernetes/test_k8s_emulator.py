"""The emulated API server follows the conventions the provider relies on (over real HTTP)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from k8s_emulator import merge_patch, parse_selector

WF = "/apis/argoproj.io/v1alpha1/namespaces/quantum/workflows"


def call(server, method, path, body=None, content_type="application/json"):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def workflow(name, labels=None, extra=None):
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "suspend": {}}],
            **(extra or {}),
        },
    }


def test_create_sets_uid_and_resource_version_and_refuses_duplicates(cluster):
    code, made = call(cluster.server, "POST", WF, workflow("a"))
    assert code == 201
    assert made["metadata"]["uid"] and made["metadata"]["resourceVersion"]
    assert made["metadata"]["namespace"] == "quantum"
    code, status = call(cluster.server, "POST", WF, workflow("a"))
    assert code == 409
    assert status["kind"] == "Status" and status["reason"] == "AlreadyExists"
    assert status["details"]["name"] == "a"


def test_not_found_tells_a_missing_object_from_an_unknown_path(cluster):
    code, status = call(cluster.server, "GET", WF + "/nope")
    assert (code, status["reason"], status["details"]["name"]) == (404, "NotFound", "nope")
    code, status = call(cluster.server, "GET", "/apis/kueue.x-k8s.io/v9/namespaces/q/workloads")
    assert code == 404 and "details" not in status


def test_label_selectors(cluster):
    for name, labels in [("a", {"x": "1", "y": "k"}), ("b", {"x": "2"}), ("c", {"z": "3"})]:
        assert call(cluster.server, "POST", WF, workflow(name, labels))[0] == 201

    def names(sel):
        code, listed = call(cluster.server, "GET", f"{WF}?labelSelector={urllib.parse.quote(sel)}")
        assert code == 200, listed
        return [o["metadata"]["name"] for o in listed["items"]]

    assert names("x=1") == ["a"]
    assert names("x==2") == ["b"]
    assert names("x!=1") == ["b", "c"]
    assert names("x in (1,2)") == ["a", "b"]
    assert names("x notin (1)") == ["b", "c"]
    assert names("x") == ["a", "b"]
    assert names("!x") == ["c"]
    assert names("x in (1,2),y=k") == ["a"]
    code, status = call(cluster.server, "GET", f"{WF}?labelSelector=" + urllib.parse.quote("x in"))
    assert code == 400 and status["reason"] == "BadRequest"


def test_merge_patch_and_optimistic_concurrency(cluster):
    _, made = call(cluster.server, "POST", WF, workflow("a", {"keep": "1", "drop": "1"}))
    patch = {"metadata": {"labels": {"drop": None, "new": "2"}}, "spec": {"shutdown": "Stop"}}
    code, patched = call(cluster.server, "PATCH", WF + "/a", patch, "application/merge-patch+json")
    assert code == 200
    assert patched["metadata"]["labels"] == {"keep": "1", "new": "2"}
    assert patched["spec"]["shutdown"] == "Stop" and patched["spec"]["entrypoint"] == "main"
    assert int(patched["metadata"]["resourceVersion"]) > int(made["metadata"]["resourceVersion"])
    assert patched["metadata"]["generation"] == 2
    stale = {"metadata": {"resourceVersion": made["metadata"]["resourceVersion"]}}
    assert call(cluster.server, "PATCH", WF + "/a", stale, "application/merge-patch+json")[0] == 409
    assert call(cluster.server, "PATCH", WF + "/a", [], "application/json-patch+json")[0] == 415


def test_created_workflows_are_validated_against_the_crd(cluster):
    code, status = call(cluster.server, "POST", WF, workflow("bad", extra={"entrypiont": "x"}))
    assert code == 422 and "entrypiont" in status["message"]


def test_merge_patch_rfc7386_examples():
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}


@pytest.mark.parametrize("bad", ["a in (", "!a=b", "a b"])
def test_selector_parser_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        parse_selector(bad)
