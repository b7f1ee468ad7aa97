#!/usr/bin/env python3
"""Refuses base images and workflow actions that are not pinned.

A tag (`debian:bookworm-slim`, `actions/checkout@v4`) can be re-pointed by
whoever controls it; a digest or a commit cannot. So:

- every `FROM` in a Dockerfile is `scratch`, an earlier stage, or an image
  (directly or through an `ARG` default) pinned by `@sha256:<64 hex>`;
  `ARG BINARY_IMAGE=build` names a stage and is allowed;
- every `uses:` in a workflow is a local action (`./...`) or
  `owner/repo[/path]@<40 hex commit>`.

Usage: verify-pins.py FILE... (Dockerfiles and workflow YAML files; the
kind is told by the name). Exits 1 and names every unpinned line.
"""

import re
import sys

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
COMMIT = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def dockerfile(path, lines):
    args, stages, bad = {}, set(), []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        m = re.match(r"ARG\s+(\w+)(?:=(\S+))?", line)
        if m:
            args.setdefault(m.group(1), m.group(2))
            continue
        m = re.match(r"FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if not m:
            continue
        image, stage = m.group(1), m.group(2)
        var = re.fullmatch(r"\$\{?(\w+)\}?", image)
        if var:
            image = args.get(var.group(1)) or ""
        if image == "scratch" or image in stages or DIGEST.search(image):
            pass
        else:
            bad.append(f"{path}:{n}: FROM {m.group(1)} is not pinned by digest ({image or 'no default'})")
        if stage:
            stages.add(stage)
    return bad


def workflow(path, lines):
    bad = []
    for n, raw in enumerate(lines, 1):
        m = re.match(r"\s*(?:-\s+)?uses:\s*(\S+)", raw)
        if m and not m.group(1).startswith("./") and not COMMIT.match(m.group(1)):
            bad.append(f"{path}:{n}: uses {m.group(1)} is not pinned by commit")
    return bad


def main(paths):
    bad = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        check = workflow if path.endswith((".yml", ".yaml")) else dockerfile
        bad += check(path, lines)
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        return 1
    print(f"pins: {len(paths)} files, every base image and action pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
