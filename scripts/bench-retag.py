"""Renames a `docker save` archive on its way from stdin to stdout.

The comparison row of the benchmark: the tarfile loop that imgload's tar
stage replaces. Only `repositories` is rewritten, to {NAME: {TAG: top}}.
Usage: zstd -dc image.tar.zst | python3 bench-retag.py NAME:TAG > out.tar
"""
import io
import json
import sys
import tarfile

name, tag = sys.argv[1].rsplit(":", 1)
source = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
target = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")
for member in source:
    body = source.extractfile(member)
    if member.name == "repositories":
        tags = next(iter(json.load(body).values()))
        data = json.dumps({name: {tag: next(iter(tags.values()))}}).encode()
        member.size = len(data)
        body = io.BytesIO(data)
    target.addfile(member, body)
target.close()
