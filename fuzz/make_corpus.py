#!/usr/bin/env python3
"""
make_corpus.py: (re)build the seed corpora in fuzz/corpus/ from
schemas/vectors.json. Each seed is the fuzz target's mode byte(s) followed by
the bytes of one vector (see the top comment of each *_fuzz.c).

    python3 fuzz/make_corpus.py
"""
import json
import os

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
doc = json.load(open(os.path.join(root, "schemas", "vectors.json")))


def write(target, name, data):
    d = os.path.join(root, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


NODES = {0: 0, 0x1111: 1, 0x2222: 2, (1 << 64) - 1: 3}
for v in doc["envelope"]:
    ito, ifrom = int(v["implied_to_node"]), int(v["implied_from_node"])
    if ito not in NODES or ifrom not in NODES or "limits" in v:
        continue
    mode = NODES[ito] | NODES[ifrom] << 2
    write("envelope", v["name"], bytes([mode]) + bytes.fromhex(v["hex"]))

for v in doc["msgpack"]:
    if "limits" in v:
        continue
    write("check", v["name"], b"\x00" + bytes.fromhex(v["hex"]))
    write("check", v["name"] + "-ext", b"\x02" + bytes.fromhex(v["hex"]))


def varint(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return (n | 0x4000).to_bytes(2, "big")
    return (n | 0x80000000).to_bytes(4, "big")


stream = b""
for v in doc["envelope"][:8]:
    if "error" not in v:
        b = bytes.fromhex(v["hex"])
        stream += varint(len(b)) + b
write("frame", "envelopes", b"\xff\x55" + stream)
write("frame", "empty-frames", b"\x10\x00" + b"\x00" * 8 + b"\x05hello")
write("frame", "too-big", b"\x01\x01" + b"\x7f\xff")
