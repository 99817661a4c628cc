"""The import graph of the build's object files, and its cycles.

  check_cycles.py --library OBJECT... --cli OBJECT...

File A imports file B when A uses a global symbol that B defines (nm). The
library's files and the tool's (cli/) form one graph, in which the tool may
import the library but not the reverse. A cycle is a strongly connected
component of more than one file: none of its files can be understood, tested
or replaced without the others. Prints every cycle with the symbols that tie
it, and fails on any cycle and on an import of cli/ by the library.
Arguments may also be ;-separated lists, as CMake's $<TARGET_OBJECTS:...> gives.
"""
import argparse
import re
import sys

from nm_symbols import global_symbols


def source_name(path):
    """src/attention/sdpa.c for .../CMakeFiles/attn_objects.dir/src/attention/sdpa.c.o."""
    match = re.search(r"\.dir/(.+)\.o$", path)
    return match.group(1) if match else path


def import_graph(objects):
    """{file: {imported file: symbols}} over the given object files."""
    table = {source_name(path): symbols for path, symbols in global_symbols(objects).items()}
    definer = {name: f for f, (defined, _) in table.items() for name in defined}
    graph = {f: {} for f in table}
    for f, (_, used) in table.items():
        for name in used:
            to = definer.get(name)
            if to is not None and to != f:
                graph[f].setdefault(to, set()).add(name)
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm: the strongly connected components, each a set of files."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while v not in component:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def describe(cycle, graph):
    """The cycle's files and, for each import between two of them, its symbols."""
    lines = [f"cycle of {len(cycle)} files: " + " ".join(sorted(cycle))]
    for f in sorted(cycle):
        for to, names in sorted(graph[f].items()):
            if to in cycle:
                lines.append(f"  {f} -> {to}: " + ", ".join(sorted(names)))
    return "\n".join(lines)


def objects(arguments):
    """The object paths, given one an argument or ;-separated."""
    return [path for argument in arguments for path in argument.split(";") if path]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", nargs="+", required=True)
    parser.add_argument("--cli", nargs="+", required=True)
    args = parser.parse_args()
    library = {source_name(path) for path in objects(args.library)}
    tool = {source_name(path) for path in objects(args.cli)}
    graph = import_graph(objects(args.library) + objects(args.cli))
    failures = [f"the library imports the tool: {f} -> {to}: " + ", ".join(sorted(names))
                for f in sorted(library & graph.keys())
                for to, names in sorted(graph[f].items()) if to not in library]

    cycles = sorted((c for c in strongly_connected(graph) if len(c) > 1), key=sorted)
    edges = sum(len(imports) for imports in graph.values())
    print(f"import graph: {len(library)} library files, {len(tool)} tool files, "
          f"{edges} imports, {len(cycles)} cycles")
    for cycle in cycles:
        print(describe(cycle, graph))
        failures.append("an import cycle: " + " ".join(sorted(cycle)))
    for failure in failures:
        print("check_cycles: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
