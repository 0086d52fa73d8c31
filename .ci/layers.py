#!/usr/bin/env python3
"""Checks that a crate's modules import downwards only.

Usage: layers.py SRC_DIR ORDER_FILE [-v]

ORDER_FILE lists module paths from the bottom up, one a line (`#` starts a
comment). A module belongs to the longest entry that is its path or a prefix
of it; `crate::Name` counts as an import of the module the crate root
re-exports `Name` from. A module may import (name a `crate::...` path of) only modules whose
entry comes before its own, or modules of its own entry, and a folder's
children may import its `mod.rs`. Imports inside an entry are checked only
where the entry is a single file. Every cycle must lie inside one entry.

Prints the number of imports between modules, each upward import, each
cycle that crosses entries, and exits 1 if there is any.
"""
import os
import re
import sys
from collections import defaultdict


def modules(src):
    found = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith('.rs'):
                path = os.path.join(root, f)
                parts = os.path.relpath(path, src)[:-3].split(os.sep)
                if parts[-1] in ('mod', 'lib'):
                    parts = parts[:-1]
                found['::'.join(parts)] = path
    return found


def root_reexports(mods):
    """Names the crate root re-exports (`pub use crate::a::{B, C};`), with
    the module each comes from: `crate::B` imports that module."""
    found = {}
    root = mods.get('')
    if root is None:
        return found
    text = re.sub(r'//[^\n]*', '', open(root).read())
    for m in re.finditer(r'pub use crate::((?:[a-z_][a-z0-9_]*::)*)\{?([^;]*?)\}?;', text, re.S):
        module = m.group(1).rstrip(':')
        for item in m.group(2).split(','):
            name = item.strip().split(' as ')[-1].strip()
            if name and module:
                found[name] = module
    return found


def imports(mods):
    reexported = root_reexports(mods)

    def resolve(path):
        parts = path.split('::')
        for i in range(len(parts), 0, -1):
            m = '::'.join(parts[:i])
            if m in mods and m != '':
                return m
        # `crate::Name`: the module the root re-exports it from.
        if parts[0] in reexported:
            name = reexported[parts[0]]
            while name and name not in mods:
                name = name.rsplit('::', 1)[0] if '::' in name else ''
            return name or None
        return None

    path_re = re.compile(r'crate::((?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)')
    group_re = re.compile(r'use\s+crate::\{([^;]*)\};', re.S)
    edges = defaultdict(set)
    for m, f in mods.items():
        if m == '':
            continue  # the crate root re-exports everything
        text = open(f).read()
        text = re.split(r'#\[cfg\(test\)\]\s*mod tests', text)[0]
        text = re.sub(r'//[^\n]*', '', text)
        targets = set()
        for g in group_re.finditer(text):
            for item in re.split(r',(?![^{]*\})', g.group(1)):
                head = re.match(r'\s*([A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)', item)
                if head and resolve(head.group(1)):
                    targets.add(resolve(head.group(1)))
        for p in path_re.finditer(text):
            t = resolve(p.group(1))
            if t:
                targets.add(t)
        for t in targets:
            if t not in ('', m) and not m.startswith(t + '::'):
                edges[m].add(t)
    return edges


def cycles(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    src, order_file = sys.argv[1], sys.argv[2]
    order = [l.split('#')[0].strip() for l in open(order_file)]
    order = [l for l in order if l]
    mods = modules(src)
    edges = imports(mods)

    def entry(m):
        best = None
        for i, o in enumerate(order):
            if (m == o or m.startswith(o + '::')) and (best is None or len(o) > len(order[best])):
                best = i
        return best

    problems = 0
    for m in sorted(mods):
        if m and entry(m) is None:
            print(f"not in {order_file}: {m}")
            problems += 1
    upward = 0
    for m in sorted(edges):
        for t in sorted(edges[m]):
            if entry(t) > entry(m):
                upward += 1
                print(f"upward: {m} -> {t}")
    for comp in cycles([m for m in mods if m], edges):
        if len({entry(m) for m in comp}) > 1:
            problems += 1
            print("cycle across layers:", ", ".join(comp))
        else:
            print("loop inside", order[entry(comp[0])] + ":", ", ".join(comp))
    total = sum(len(v) for v in edges.values())
    print(f"{src}: {len(mods)} modules, {total} imports between them, {upward} upward")
    if '-v' in sys.argv:
        for m in sorted(edges):
            print(m, '->', ', '.join(sorted(edges[m])))
    sys.exit(1 if upward or problems else 0)


if __name__ == '__main__':
    main()
