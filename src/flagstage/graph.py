"""The dependency graph between features: cycles, and what requires what transitively.

Pure graph algorithms over plain names; what a cycle means for a rollout, and how it is
reported, is decided in `flagstage.validation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def find_cycles(requires: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of features, as `[a, b, c, a]`.

    Names that are not keys of `requires` are ignored (they are reported as unknown elsewhere).
    The result is deterministic: groups and the cycle inside each start from the smallest name.
    """
    components = _strongly_connected(requires)
    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        if len(component) == 1 and start not in requires.get(start, ()):
            continue
        cycles.append(_cycle_through(start, members, requires))
    return sorted(cycles)


def _cycle_through(
    start: str, members: set[str], requires: Mapping[str, Sequence[str]]
) -> list[str]:
    """A simple cycle from `start` back to itself inside one strongly connected group."""
    # Breadth-first search gives the shortest way back, which is the clearest cycle to print.
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(requires.get(node, ())):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start!r} in a strongly connected group")


def _strongly_connected(requires: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so deep chains cannot exhaust the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    for root in sorted(requires):
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(requires[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in requires:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(requires[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def transitive_requirements(requires: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """For each feature, every feature it needs directly or indirectly, sorted.

    Safe on graphs with cycles (each name is visited once) and unknown names (skipped).
    """
    closure: dict[str, tuple[str, ...]] = {}
    for name in requires:
        seen: set[str] = set()
        pending = [req for req in requires[name] if req in requires]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            pending.extend(req for req in requires[current] if req in requires)
        seen.discard(name)
        closure[name] = tuple(sorted(seen))
    return closure


def dependents(requires: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """For each feature, every feature that needs it directly or indirectly, sorted."""
    needed_by: dict[str, set[str]] = {name: set() for name in requires}
    for name, needs in transitive_requirements(requires).items():
        for need in needs:
            needed_by[need].add(name)
    return {name: tuple(sorted(users)) for name, users in needed_by.items()}
