#!/usr/bin/env python3
"""Checks that the commands in every README still exist as written, so the
docs cannot rot silently. Usage: scripts/check-readme-commands.py BIN_DIR

For each command in a ```sh block of README.md and */README.md:
- `cargo run ... -p CRATE -- ARGS`, `target/release/ballast ARGS` and
  `ballast ARGS`: the subcommands exist (`--help` of the binary and of each
  subcommand level), and every `--flag` used is in that subcommand's help;
- `cargo test ... -p CRATE --test NAME`: the test file exists;
- `tla/check.sh`, `scripts/...`: the script exists and is executable;
- `cargo test`/`cargo build` of the whole workspace: CI runs that very step
  (`.ci/run`); of one crate: the crate exists;
- `cargo run --features F`: the feature exists, and the flags the feature
  adds are in the binary's source, the others in its help;
- `curl` to the node's JSON-RPC: the method is one the node serves;
- `npx quint ...`: `tla/check.sh`, which CI runs, runs quint with that
  subcommand, module, invariant, flags and file;
- `VAR=$(cmd)` and `a && b`: each command inside is checked.
Anything else is listed as not checked (none today). The long runs
themselves (the suite, the model, the tests) are what CI runs anyway.
"""

import os
import re
import shlex
import subprocess
import sys

BINARIES = {
    "ballast-sim": "ballast-sim",
    "ballast-scenarios": "ballast-scenarios",
    "ballast-node": "ballast",
}
TEST_DIRS = {
    "ballast-core": "core",
    "ballast-sim": "sim",
    "ballast-node": "node",
    "ballast-scenarios": "scenarios",
    "ballast-transports": "transports",
}


def commands(path):
    """The commands of a README's sh blocks, continuation lines joined."""
    text = open(path).read()
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.split("\n"):
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                yield line


def help_text(binary, path):
    out = subprocess.run([binary, *path, "--help"], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return out.stdout


def subcommands(help):
    """The subcommand names a clap help lists under `Commands:`."""
    names, inside = set(), False
    for line in help.splitlines():
        if line.startswith("Commands:"):
            inside = True
        elif inside and line.startswith("  ") and line.strip():
            names.add(line.split()[0])
        elif inside and not line.startswith(" "):
            inside = False
    return names


def check_binary(binary, args):
    """Problems with running `binary args` (an empty list: none)."""
    path, help = [], help_text(binary, [])
    if help is None:
        return [f"{binary} --help fails"]
    for token in args:
        if token.startswith("-"):
            break
        if token in subcommands(help):
            path.append(token)
            help = help_text(binary, path)
            if help is None:
                return [f"{' '.join(path)} --help fails"]
    flags = {t.split("=")[0] for t in args if t.startswith("--")}
    where = " ".join([os.path.basename(binary), *path])
    return [f"`{where}` has no {f}" for f in sorted(flags) if f not in help]


MANIFEST_DIRS = {**TEST_DIRS}


def check_rpc(line):
    """A curl to the node's JSON-RPC: its method must be one the node serves."""
    methods = re.findall(r'\\?"method\\?":\\?"([A-Za-z_]+)', line)
    if not methods:
        return None
    served = open("node/src/rpc.rs").read()
    return [f"the node serves no RPC method {m}" for m in methods if f'"{m}"' not in served]


def check_quint(tokens):
    """`npx quint SUB ...`: tla/check.sh (run by CI) runs the same."""
    script = open("tla/check.sh").read()
    if f"quint {tokens[2]} " not in script:
        return [f"tla/check.sh runs no `quint {tokens[2]}`"]
    problems = []
    for t in tokens[3:]:
        # Values of --main, --invariant and the model file must match; of
        # other flags, the flag itself (CI picks its own sample counts).
        literal = t if t.startswith(("--main=", "--invariant=")) or t.endswith(".qnt") else t.split("=")[0]
        if literal not in script:
            problems.append(f"tla/check.sh never uses {literal}")
    return problems


def check_feature_run(tokens, bin_dir):
    """`cargo run -p CRATE --features F -- ARGS`: F exists; the flags the
    feature adds are in the source, the rest in the default build's help."""
    crate = tokens[tokens.index("-p") + 1]
    feature = tokens[tokens.index("--features") + 1]
    manifest = open(f"{MANIFEST_DIRS[crate]}/Cargo.toml").read()
    if not re.search(rf"^{re.escape(feature)}\s*=", manifest, re.M):
        return [f"{crate} has no feature {feature}"]
    args = tokens[tokens.index("--") + 1 :]
    source = open(f"{MANIFEST_DIRS[crate]}/src/main.rs").read()
    gated = [a for a in args if a.startswith("--") and f'#[cfg(feature = "{feature}")]' in source
             and re.search(rf"\b{re.escape(a[2:].replace('-', '_'))}\b", source)]
    rest, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in gated:
            skip = True  # and its value
            continue
        rest.append(a)
    return check_binary(os.path.join(bin_dir, BINARIES[crate]), rest)


def check(line, bin_dir):
    # `VAR=$(command)`: the command inside; `a && b`: each part.
    if " && " in line:
        parts = [check(part, bin_dir) for part in line.split(" && ")]
        if any(p is None for p in parts):
            return None
        return [problem for p in parts for problem in p]
    inner = re.match(r"^[A-Z_]+=\$\((.*)\)$", line)
    if inner:
        line = inner.group(1)
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    tokens = [t for t in tokens if not re.match(r"^[A-Z_]+=", t)]
    if tokens and tokens[0] == "sudo":
        tokens = tokens[1:]
    if not tokens:
        return None
    if tokens[0] == "curl":
        return check_rpc(line)
    if tokens[:2] == ["npx", "quint"] and len(tokens) > 2:
        return check_quint(tokens)
    if tokens[:2] == ["mkdir", "-p"]:
        return []  # nothing to rot
    if tokens[:2] in (["cargo", "test"], ["cargo", "build"]) and "--workspace" in tokens:
        ci = open(".ci/run").read()
        return [] if " ".join(tokens) in ci else [f"CI runs no `{' '.join(tokens)}`"]
    if tokens[:2] == ["cargo", "build"] and "-p" in tokens:
        crate = tokens[tokens.index("-p") + 1]
        return [] if crate in MANIFEST_DIRS else [f"no crate {crate}"]
    if tokens[:2] == ["cargo", "run"] and "--features" in tokens:
        return check_feature_run(tokens, bin_dir)
    if tokens[:2] == ["cargo", "run"]:
        # Without -p: the workspace's default member, the suite.
        crate = tokens[tokens.index("-p") + 1] if "-p" in tokens else "ballast-scenarios"
        args = tokens[tokens.index("--") + 1 :] if "--" in tokens else []
        return check_binary(os.path.join(bin_dir, BINARIES[crate]), args)
    if tokens[0] in ("target/release/ballast", "ballast"):
        return check_binary(os.path.join(bin_dir, "ballast"), tokens[1:])
    if tokens[:2] == ["cargo", "test"] and "--test" in tokens:
        crate = tokens[tokens.index("-p") + 1]
        name = tokens[tokens.index("--test") + 1]
        test = f"{TEST_DIRS[crate]}/tests/{name}.rs"
        return [] if os.path.exists(test) else [f"no test file {test}"]
    if tokens[0].endswith(".sh") or tokens[0].startswith("scripts/"):
        ok = os.access(tokens[0], os.X_OK)
        return [] if ok else [f"{tokens[0]} is missing or not executable"]
    return None


def main():
    bin_dir = sys.argv[1]
    os.chdir(os.path.join(os.path.dirname(__file__), ".."))
    readmes = ["README.md"] + sorted(
        f"{d}/README.md" for d in os.listdir(".") if os.path.exists(f"{d}/README.md")
    )
    checked, skipped, problems = 0, 0, []
    for readme in readmes:
        for line in commands(readme):
            found = check(line, bin_dir)
            if found is None:
                skipped += 1
                continue
            checked += 1
            problems += [f"{readme}: {line}\n    {p}" for p in found]
    print(f"README commands: {checked} checked, {skipped} not checked")
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
