#!/usr/bin/env python3
"""Checks that the commands in every README still exist as written, so the
docs cannot rot silently. Usage: scripts/check-readme-commands.py BIN_DIR

For each command in a ```sh block of README.md and */README.md:
- `cargo run ... -p CRATE -- ARGS`, `target/release/ballast ARGS` and
  `ballast ARGS`: the subcommands exist (`--help` of the binary and of each
  subcommand level), and every `--flag` used is in that subcommand's help;
- `cargo test ... -p CRATE --test NAME`: the test file exists;
- `tla/check.sh`, `scripts/...`: the script exists and is executable.
Other commands (curl, npx, mkdir) are listed as not checked. The long runs
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


def check(line, bin_dir):
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    tokens = [t for t in tokens if not re.match(r"^[A-Z_]+=", t)]
    if tokens and tokens[0] == "sudo":
        tokens = tokens[1:]
    if not tokens:
        return None
    if tokens[:2] == ["cargo", "run"] and "--features" in tokens:
        return None  # another build than CI's binaries: not checked here
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
    print(f"README commands: {checked} checked, {skipped} not checked (curl, npx, shell, feature builds)")
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
