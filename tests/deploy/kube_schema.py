"""Kubernetes objects checked against the API's own models (the `kubernetes` client that
dagster-k8s installs): every field name known, every value of the model's type, and the fields
the API requires present. What `kubectl apply --dry-run=server` would catch first, offline."""

from __future__ import annotations

import re
from typing import Any

import kubernetes.client as k8s

_SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}
# Kinds and their models; the API version must match the model's group.
KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
}


def _required(model) -> set[str]:
    """Attributes whose setter refuses None (the API marks them required)."""
    required = set()
    for attribute in model.openapi_types:
        instance = model.__new__(model)
        instance.local_vars_configuration = k8s.Configuration()
        try:
            setattr(instance, attribute, None)
        except ValueError:
            required.add(attribute)
    return required


def problems(value: Any, type_name: str, path: str = "", *, partial: bool = False) -> list[str]:
    """Every way `value` is not a valid `type_name` (a model name or an openapi type string);
    `partial`: a fragment to be merged into a whole object (its top level may omit required
    fields, as the run launcher's jobSpecConfig does)."""
    if value is None:
        return []
    if type_name in _SCALARS:
        ok = isinstance(value, _SCALARS[type_name]) and not (
            type_name != "bool" and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: {value!r} is not {type_name}"]
    if type_name == "object":  # IntOrString, quantities, free-form
        return [] if isinstance(value, (str, int, dict, list)) else [f"{path}: {value!r}"]
    if type_name == "datetime":
        return []
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, item in enumerate(value) for p in problems(item, match[1], f"{path}[{i}]")]
    if match := re.fullmatch(r"dict\[str, (.+)\]", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [p for key, item in value.items() for p in problems(item, match[1], f"{path}.{key}")]
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    by_key = {json: attribute for attribute, json in model.attribute_map.items()}
    found = [f"{path}.{key}: unknown field of {type_name}" for key in value if key not in by_key]
    for key, item in value.items():
        if key in by_key:
            found += problems(item, model.openapi_types[by_key[key]], f"{path}.{key}")
    for attribute in () if partial else _required(model):
        if model.attribute_map[attribute] not in value:
            found.append(f"{path}: {type_name} requires {model.attribute_map[attribute]}")
    return found


def document_problems(doc: dict) -> list[str]:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in KINDS:
        return [f"{key}: not a kind these manifests are checked for"]
    return problems(doc, KINDS[key], f"{doc['kind']}/{doc['metadata']['name']}")
