#!/usr/bin/env python3
"""openapi_fmt.py: writes docs/openapi.json in its house layout (two-space indent; an object or
array that fits on its line stays on one line). Usage: openapi_fmt.py FILE (rewrites FILE)."""
import json
import sys

WIDTH = 100


def inline(v):
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(json.dumps(k, ensure_ascii=False) + ": " + inline(x) for k, x in v.items()) + " }"
    if isinstance(v, list):
        if not v:
            return "[]"
        return "[" + ", ".join(inline(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


def fmt(v, ind, lead):
    one = inline(v)
    if not isinstance(v, (dict, list)) or ind + len(lead) + len(one) <= WIDTH:
        return one
    pad = " " * (ind + 2)
    if isinstance(v, dict):
        items = []
        for k, x in v.items():
            key = json.dumps(k, ensure_ascii=False) + ": "
            items.append(pad + key + fmt(x, ind + 2, key))
        return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
    return "[\n" + ",\n".join(pad + fmt(x, ind + 2, "") for x in v) + "\n" + " " * ind + "]"


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        f.write(fmt(doc, 0, "") + "\n")
