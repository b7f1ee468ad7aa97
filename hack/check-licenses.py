#!/usr/bin/env python3
"""Fails when a dependency's license is not on the allow-list.

Reads `cargo metadata --format-version 1` on stdin. An SPDX expression passes
when it is true with every allowed license true: we can pick an allowed
option of each dual-licensed crate, and must meet every AND.
"""
import json
import re
import sys

ALLOWED = {
    "Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Zlib",
    "Unicode-3.0", "Unicode-DFS-2016", "CC0-1.0", "0BSD", "MPL-2.0",
    "Apache-2.0 WITH LLVM-exception", "BSL-1.0", "CDLA-Permissive-2.0",
}


def acceptable(expr: str) -> bool:
    """Evaluates an SPDX expression (AND binds tighter than OR; parentheses;
    legacy `/` means OR) with allowed licenses as true."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom():
        if peek() == "(":
            take()
            value = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expr!r}")
            return value
        license_id = take()
        if peek() == "WITH":
            take()
            license_id = f"{license_id} WITH {take()}"
        return license_id in ALLOWED

    def conjunction():
        value = atom()
        while peek() == "AND":
            take()
            value = atom() and value
        return value

    def disjunction():
        value = conjunction()
        while peek() == "OR":
            take()
            value = conjunction() or value
        return value

    try:
        value = disjunction()
    except (IndexError, ValueError):
        return False
    return value and pos == len(tokens)


def main() -> int:
    meta = json.load(sys.stdin)
    ours = set(meta.get("workspace_members", []))
    bad = []
    for pkg in meta["packages"]:
        if pkg["id"] in ours:
            continue
        lic = pkg.get("license") or ""
        if not lic or not acceptable(lic):
            bad.append(f"{pkg['name']} {pkg['version']}: {lic or 'no license field'}")
    if bad:
        print("dependencies with licenses outside the allow-list:")
        print("\n".join(f"  {b}" for b in sorted(bad)))
        return 1
    print(f"{len(meta['packages']) - len(ours)} dependencies, all licenses allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
