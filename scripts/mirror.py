#!/usr/bin/env python3
"""Makes DEST an exact copy of the source tree SRC (without .git and target), writing only
the files whose content differs, so that files that did not change keep their old
modification times.

scripts/test.sh builds from such a copy at a fixed place (~/.cache/callgrid/src): cargo
decides what to rebuild from the sources' paths and modification times, and a fresh clone
has new ones for every file, so each CI run used to rebuild every crate of the workspace
(about 9 minutes on 2 cores) even when one line of one crate had changed.

Usage: scripts/mirror.py SRC DEST
"""
import filecmp
import os
import shutil
import sys

SKIP = {".git", "target"}


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def mirror(src, dest):
    keep = set()
    written = 0
    for root, dirs, files in os.walk(src):
        rel = os.path.normpath(os.path.relpath(root, src))
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in SKIP]
        # a link to a directory is copied as a link, like a link to a file
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        dirs[:] = sorted(d for d in dirs if d not in links)
        out_dir = os.path.join(dest, rel)
        if os.path.islink(out_dir) or (os.path.lexists(out_dir) and not os.path.isdir(out_dir)):
            remove(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        keep.add(rel)
        for name in dirs + files + links:
            keep.add(os.path.normpath(os.path.join(rel, name)))
        for name in files + links:
            s = os.path.join(root, name)
            d = os.path.join(out_dir, name)
            if os.path.islink(s):
                target = os.readlink(s)
                if not (os.path.islink(d) and os.readlink(d) == target):
                    remove(d)
                    os.symlink(target, d)
                    written += 1
                continue
            same = (
                os.path.isfile(d)
                and not os.path.islink(d)
                and filecmp.cmp(s, d, shallow=False)
            )
            if not same:
                remove(d)
                shutil.copyfile(s, d)
                written += 1
            if os.stat(s).st_mode & 0o777 != os.stat(d).st_mode & 0o777:
                shutil.copymode(s, d)
    removed = 0
    for root, dirs, files in os.walk(dest, topdown=False):
        rel = os.path.normpath(os.path.relpath(root, dest))
        for name in files + dirs:
            path = os.path.normpath(os.path.join(rel, name))
            if path not in keep:
                remove(os.path.join(root, name))
                removed += 1
    return written, removed


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    written, removed = mirror(sys.argv[1], sys.argv[2])
    print(f"sources mirrored to {sys.argv[2]}: {written} written, {removed} removed")
