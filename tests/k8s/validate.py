"""Validate Kubernetes manifests offline; run by tests/k8s with .venv-k8s's Python (not .venv's).

    validate.py --schemas DIR --k8s-version 1.37.0 FILE...

Every document is routed by kind: a kind with a CRD in DIR (SparkApplication,
ScheduledSparkApplication, Kafka, KafkaTopic, KafkaNodePool) is checked against that CRD's
openAPIV3Schema made strict (`additionalProperties: false` on every object schema that lists
properties and does not preserve unknown fields, so a misspelled field is an error); any other
kind goes to kubernetes-validate in strict mode. A kind neither knows is reported `unvalidated`,
never as passed. Prints one JSON object per document on stdout.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils


def strict(schema):
    """A copy of an OpenAPI v3 schema in which unknown properties are errors."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_crds(folder: Path) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict schema, for every served version of every CRD in folder."""
    crds = {}
    for f in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for v in doc["spec"]["versions"]:
                if v.get("served"):
                    schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
                    # ObjectMeta is checked for its name only (the API server owns the rest).
                    schema.setdefault("properties", {})["metadata"] = {
                        "type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                        "x-kubernetes-preserve-unknown-fields": True}
                    schema.setdefault("required", [])
                    crds[(f"{group}/{v['name']}", kind)] = strict(schema)
    return crds


def check(doc: dict, crds: dict, version: str) -> dict:
    kind, api = doc.get("kind"), doc.get("apiVersion")
    res = {"kind": kind, "apiVersion": api, "name": (doc.get("metadata") or {}).get("name")}
    if (api, kind) in crds:
        v = jsonschema.Draft7Validator(crds[(api, kind)])
        errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
        res.update(validator="crd", ok=not errors,
                   errors=[f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors])
        return res
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        res.update(validator="kubernetes-validate", ok=True, errors=[])
    except kv_utils.SchemaNotFoundError as e:
        res.update(validator="none", ok=False, errors=[f"unvalidated: no schema for this kind: {e}"])
    except kv_utils.ValidationError as e:
        path = ".".join(map(str, e.path)) or "<root>"
        res.update(validator="kubernetes-validate", ok=False, errors=[f"{path}: {e.message}"])
    except kv_utils.InvalidSchemaError as e:
        res.update(validator="kubernetes-validate", ok=False, errors=[f"invalid schema: {e}"])
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schemas", type=Path, required=True, help="folder of CRD YAML files")
    ap.add_argument("--k8s-version", default="1.37.0")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    crds = load_crds(args.schemas)
    bad = 0
    for f in args.files:
        for i, doc in enumerate(d for d in yaml.safe_load_all(f.read_text()) if d):
            res = {"file": str(f), "index": i, **check(doc, crds, args.k8s_version)}
            bad += not res["ok"]
            print(json.dumps(res))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
