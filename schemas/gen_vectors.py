#!/usr/bin/env python3
"""
gen_vectors.py: writes schemas/vectors.json, the wire test vectors.

This is a second, independent implementation of the envelope encoding of
schemas/README.md (no msgpack library, only the byte rules), so that the C
codec is checked against bytes it did not produce itself. The JS side can use
it as a reading aid. vectors.json is the committed artifact; rerun this script
after changing it here:

    python3 schemas/gen_vectors.py > schemas/vectors.json

Conventions of the file (also in README.md): 64-bit quantities (node ids,
local ids, corr, implied nodes) are decimal strings, because JavaScript
numbers lose precision above 2^53; everything else is a JSON number.
"""
import json
import struct

# ---------------------------------------------------------------- msgpack bytes


def uint(v):
    assert 0 <= v < 1 << 64
    if v < 0x80:
        return bytes([v])
    if v <= 0xFF:
        return b"\xcc" + struct.pack(">B", v)
    if v <= 0xFFFF:
        return b"\xcd" + struct.pack(">H", v)
    if v <= 0xFFFFFFFF:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def int32(v):
    assert -(1 << 31) <= v < 1 << 31
    if v >= 0:
        return uint(v)
    if v >= -32:
        return struct.pack(">b", v)
    if v >= -128:
        return b"\xd0" + struct.pack(">b", v)
    if v >= -32768:
        return b"\xd1" + struct.pack(">h", v)
    return b"\xd2" + struct.pack(">i", v)


def arr(n):
    if n < 16:
        return bytes([0x90 | n])
    if n <= 0xFFFF:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def binh(n):
    if n <= 0xFF:
        return b"\xc4" + bytes([n])
    if n <= 0xFFFF:
        return b"\xc5" + struct.pack(">H", n)
    return b"\xc6" + struct.pack(">I", n)


def mpstr(s):
    b = s.encode()
    n = len(b)
    if n < 32:
        return bytes([0xA0 | n]) + b
    if n <= 0xFF:
        return b"\xd9" + bytes([n]) + b
    return b"\xda" + struct.pack(">H", n) + b


# ------------------------------------------------------------------ envelope

PRIO = {"CRITICAL": 0, "HIGH": 1, "NORMAL": 2, "LOW": 3, "BACKGROUND": 4}
KIND = {"SEND": 0, "ASK": 1, "REPLY": 2, "CHUNK": 3, "END": 4, "FAIL": 5, "CANCEL": 6,
        "DOWN": 7, "EXIT": 8, "MONITOR": 9, "DEMONITOR": 10, "LINK": 11, "UNLINK": 12,
        "STOP": 13, "NODE": 14}


def enc_id(node, local, implied):
    if local == 0:
        return uint(0)
    if node == implied:
        return uint(local)
    return arr(2) + uint(node) + uint(local)


def envelope(e, ito, ifrom):
    n = 8 if e["code"] else 7 if e["status"] else 6
    out = arr(n)
    out += uint(e["prio"] | (e["kind"] << 3))
    out += uint(e["type"])
    out += enc_id(e["to"][0], e["to"][1], ito)
    out += enc_id(e["from"][0], e["from"][1], ifrom)
    out += uint(e["corr"])
    p = e["payload"]
    out += binh(len(p)) + p
    if n >= 7:
        out += int32(e["status"])
    if n >= 8:
        out += int32(e["code"])
    return out


def env(prio="NORMAL", kind="SEND", type=7, to=(0x1111, 5), frm=(0x2222, 9), corr=0,
        payload=b"", status=0, code=0):
    return {"prio": PRIO[prio], "kind": KIND[kind], "type": type, "to": to, "from": frm,
            "corr": corr, "payload": payload, "status": status, "code": code}


def env_json(e):
    def idj(i):
        # local 0 is "no actor" and always decodes to node 0
        return {"node": str(i[0] if i[1] else 0), "local": str(i[1])}
    return {"prio": e["prio"], "kind": e["kind"], "flags": 0, "type": e["type"],
            "to": idj(e["to"]), "from": idj(e["from"]), "corr": str(e["corr"]),
            "status": e["status"], "code": e["code"], "payload": e["payload"].hex()}


ITO, IFROM = 0x1111, 0x2222
vectors = []


def ok(name, desc, e, ito=ITO, ifrom=IFROM, hexbytes=None, limits=None):
    canon = envelope(e, ito, ifrom)
    v = {"name": name, "desc": desc, "implied_to_node": str(ito), "implied_from_node": str(ifrom)}
    if limits:
        v["limits"] = limits
    if hexbytes is None:
        v["hex"] = canon.hex()
    else:  # accepted but not canonical: re-encoding gives canonical_hex
        v["hex"] = hexbytes.hex()
        v["canonical_hex"] = canon.hex()
    v["envelope"] = env_json(e)
    vectors.append(v)


def bad(name, desc, hexbytes, err, ito=ITO, ifrom=IFROM, limits=None):
    v = {"name": name, "desc": desc, "implied_to_node": str(ito), "implied_from_node": str(ifrom)}
    if limits:
        v["limits"] = limits
    v["hex"] = hexbytes.hex()
    v["error"] = err
    vectors.append(v)


# A 64-byte payload that is itself msgpack: a str8 of 62 bytes.
P64 = b"\xd9\x3e" + b"starling-payload-" * 3 + b"0123456789a"
assert len(P64) == 64
U64 = (1 << 64) - 1

ok("send-short-ids-64B", "the common case: SEND, NORMAL, both ids short, no corr, 64-byte payload;"
   " 8 bytes of overhead", env(payload=P64))
ok("ask-long-ids", "ASK to an actor on a third node, from an actor of a fourth; CRITICAL; corr 2^40",
   env(prio="CRITICAL", kind="ASK", type=1000, to=(0xA1, 42), frm=(0xB2, 70000), corr=1 << 40,
       payload=bytes.fromhex("92a3676574cd0400")))
ok("reply-empty-payload", "REPLY with an empty payload; neither id is on its implied node, so"
   " both take the long form",
   env(prio="HIGH", kind="REPLY", type=0, to=(IFROM, 9), frm=(ITO, 5), corr=77), ITO, IFROM)
ok("chunk-256B-bin16", "CHUNK, LOW, 256-byte payload (bin 16 header)",
   env(prio="LOW", kind="CHUNK", type=300, corr=12345, payload=bytes(range(256))))
ok("end-background", "END of a streamed reply, BACKGROUND, one payload byte",
   env(prio="BACKGROUND", kind="END", type=3, corr=12345, payload=b"\xc0"))
ok("fail-timeout", "FAIL carrying status SL_ERR_TIMEOUT (-5): 7 elements",
   env(prio="HIGH", kind="FAIL", type=0, corr=99, status=-5))
ok("cancel", "CANCEL of ask 99",
   env(prio="HIGH", kind="CANCEL", type=0, corr=99))
ok("down-crash-code", "DOWN with reason CRASH (1) and crash code -100: 8 elements",
   env(prio="CRITICAL", kind="DOWN", type=0, frm=(0x2222, 300), corr=5, status=1, code=-100))
ok("exit-code-only", "EXIT with status 0 (NORMAL) but a code: status is written as 0",
   env(prio="CRITICAL", kind="EXIT", type=0, status=0, code=3))
ok("monitor", "node-to-node MONITOR signal: corr is the watcher's monitor ref",
   env(prio="CRITICAL", kind="MONITOR", type=0, corr=41))
ok("demonitor", "node-to-node DEMONITOR signal", env(prio="CRITICAL", kind="DEMONITOR", type=0,
                                                      corr=41))
ok("link", "node-to-node LINK signal", env(prio="CRITICAL", kind="LINK", type=0))
ok("unlink", "node-to-node UNLINK signal", env(prio="CRITICAL", kind="UNLINK", type=0))
ok("stop", "node-to-node STOP request: status is the reason (5 = SHUTDOWN)",
   env(prio="CRITICAL", kind="STOP", type=0, frm=(0, 0), status=5))
ok("node", "node-to-node NODE control (type 2 = WELCOME here): node ids in the payload",
   env(prio="CRITICAL", kind="NODE", type=2, to=(0x1111, 0), frm=(0x2222, 0),
       payload=b"\x93\xcd\x22\x22\xcd\x11\x11\x90"))
ok("from-none", "sent from outside any actor: from is SL_ID_NONE, written 0",
   env(frm=(0, 0), payload=b"\x01"))
ok("none-with-node", "an id with local 0 is 'no actor' whatever its node; it decodes as {0, 0}",
   env(frm=(0x9999, 0), payload=b"\x01"))
ok("max-values", "the largest value of every field",
   env(prio="BACKGROUND", kind="EXIT", type=0xFFFFFFFF, to=(U64, U64), frm=(U64 - 1, U64),
       corr=U64, payload=b"\x90", status=-(1 << 31), code=(1 << 31) - 1))
ok("implied-zero", "implied nodes 0 (a purely local hop): ids on node 0 are short",
   env(to=(0, 1), frm=(0, 2), payload=b"\x80"), 0, 0)
ok("same-implied-node", "both implied nodes equal (loopback link)",
   env(to=(7, 1), frm=(7, 2)), 7, 7)

# Accepted, but not in canonical form (a re-encode gives canonical_hex).
e = env(to=(ITO, 5), frm=(IFROM, 9))
ok("noncanon-long-form-of-implied", "a long-form id whose node is the implied one",
   e, hexbytes=arr(6) + uint(2) + uint(7) + arr(2) + uint(ITO) + uint(5) + uint(9) + uint(0)
   + binh(0))
ok("noncanon-wide-ints", "integers wider than needed (cd 0007, cf 00..05)",
   e, hexbytes=arr(6) + b"\xcc\x02" + b"\xcd\x00\x07" + b"\xce\x00\x00\x00\x05" + uint(9)
   + b"\xcf" + bytes(8) + binh(0))
ok("noncanon-status-zero", "7 elements with an explicit status 0",
   e, hexbytes=arr(7) + uint(2) + uint(7) + uint(5) + uint(9) + uint(0) + binh(0) + uint(0))
ok("noncanon-status-int32", "status written as int 32 (d2) and code as uint 8",
   env(kind="FAIL", status=-1, code=200),
   hexbytes=arr(8) + uint(2 | 5 << 3) + uint(7) + uint(5) + uint(9) + uint(0) + binh(0)
   + b"\xd2\xff\xff\xff\xff" + b"\xcc\xc8")
ok("noncanon-long-none", "[node, 0] is no actor: decodes as {0, 0}",
   env(frm=(0, 0)), hexbytes=arr(6) + uint(2) + uint(7) + uint(5) + arr(2) + uint(0x55)
   + uint(0) + uint(0) + binh(0))
ok("noncanon-array16", "the envelope array written as array 16 (dc 0006)",
   e, hexbytes=b"\xdc\x00\x06" + uint(2) + uint(7) + uint(5) + uint(9) + uint(0) + binh(0))
ok("noncanon-bin32-header", "an empty payload with a bin 32 header",
   e, hexbytes=arr(6) + uint(2) + uint(7) + uint(5) + uint(9) + uint(0) + b"\xc6" + bytes(4))

good = envelope(env(payload=P64), ITO, IFROM)
head = arr(6) + uint(2) + uint(7) + uint(5) + uint(9) + uint(0)  # up to the payload

# Size and structure.
bad("empty", "no bytes at all", b"", "SL_ERR_DECODE_TRUNCATED")
bad("array-header-only", "an array of 6 and nothing else: 6 elements cannot fit in 0 bytes",
    arr(6), "SL_ERR_DECODE_LENGTH")
bad("huge-array-length", "array 32 announcing 2^32-1 elements with none present",
    b"\xdd\xff\xff\xff\xff", "SL_ERR_DECODE_LENGTH")
bad("truncated-in-header", "cut inside a uint 64 (corr)",
    arr(6) + uint(2) + uint(7) + uint(5) + uint(9) + b"\xcf\x00\x00", "SL_ERR_DECODE_TRUNCATED")
bad("truncated-payload", "the 64-byte-payload envelope with its last 10 bytes missing",
    good[:-10], "SL_ERR_DECODE_LENGTH")
bad("trailing-byte", "a valid envelope followed by one more byte", good + b"\x00",
    "SL_ERR_DECODE_TRAILING")
bad("too-big", "74 bytes against a max_size of 73: refused before reading", good,
    "SL_ERR_DECODE_TOO_BIG", limits={"max_size": len(good) - 1})
bad("too-big-before-trailing", "a valid envelope plus one byte against max_size = the envelope's"
    " size: the size is checked first", good + b"\x00", "SL_ERR_DECODE_TOO_BIG",
    limits={"max_size": len(good)})
bad("five-elements", "an array of 5: no known version", arr(5) + bytes(5), "SL_ERR_DECODE_VERSION")
bad("nine-elements", "an array of 9: a later version than 1",
    arr(9) + good[1:] + uint(0) + uint(0) + uint(0), "SL_ERR_DECODE_VERSION")
bad("empty-array", "an empty array", arr(0), "SL_ERR_DECODE_VERSION")
bad("top-map", "a map instead of an array", b"\x86" + bytes(12), "SL_ERR_DECODE_TYPE")
bad("top-str", "a str instead of an array", b"\xa3abc", "SL_ERR_DECODE_TYPE")
bad("top-reserved-c1", "the reserved byte 0xc1", b"\xc1", "SL_ERR_DECODE_RESERVED")
bad("top-ext", "an ext value (fixext 1, type 1) instead of an array", b"\xd4\x01\x00",
    "SL_ERR_DECODE_EXT")
bad("deep-nesting-0x91", "a run of 100 x 0x91 (arrays of one array): not an envelope shape",
    b"\x91" * 100 + b"\xc0", "SL_ERR_DECODE_VERSION")

# flags
bad("flags-prio-5", "priority 5 does not exist", arr(6) + uint(5) + good[2:],
    "SL_ERR_DECODE_RESERVED")
bad("flags-prio-7", "priority 7 does not exist", arr(6) + uint(7) + good[2:],
    "SL_ERR_DECODE_RESERVED")
bad("flags-kind-15", "kind 15 does not exist", arr(6) + uint(2 | 15 << 3) + good[2:],
    "SL_ERR_DECODE_RESERVED")
bad("flags-bit-7", "bit 7 is reserved in version 1", arr(6) + uint(2 | 1 << 7) + good[2:],
    "SL_ERR_DECODE_RESERVED")
bad("flags-bit-40", "a high reserved bit (uint 64 flags)", arr(6) + uint(2 | 1 << 40) + good[2:],
    "SL_ERR_DECODE_RESERVED")
bad("flags-negative", "flags as a negative int", arr(6) + b"\xff" + good[2:],
    "SL_ERR_DECODE_TYPE")
bad("flags-c1", "flags as the reserved byte 0xc1", arr(6) + b"\xc1" + good[2:],
    "SL_ERR_DECODE_RESERVED")
bad("flags-nil", "flags as nil", arr(6) + b"\xc0" + good[2:], "SL_ERR_DECODE_TYPE")

# type
bad("type-over-32-bits", "type 2^32 does not fit uint32",
    arr(6) + uint(2) + uint(1 << 32) + good[3:], "SL_ERR_DECODE_TYPE")
bad("type-fixext", "type as fixext 1 of type 1 (not allowed)",
    arr(6) + uint(2) + b"\xd4\x01\x00" + good[3:], "SL_ERR_DECODE_EXT")
bad("type-allowed-ext", "type as fixext 1 of type 1 while ext 1 is allowed: still not a uint",
    arr(6) + uint(2) + b"\xd4\x01\x00" + good[3:], "SL_ERR_DECODE_TYPE",
    limits={"ext_allow": [1]})
bad("type-ext8-timestamp", "type as ext 8 of type -1 (timestamp); its length is never trusted",
    arr(6) + uint(2) + b"\xc7\xff\xff" + good[3:], "SL_ERR_DECODE_EXT")
bad("type-float", "type as a float 32", arr(6) + uint(2) + b"\xca\x40\x00\x00\x00" + good[3:],
    "SL_ERR_DECODE_TYPE")

# ids
bad("to-three-elements", "an id array of 3", arr(6) + uint(2) + uint(7) + arr(3) + uint(1)
    + uint(2) + uint(3) + good[4:], "SL_ERR_DECODE_TYPE")
bad("to-one-element", "an id array of 1", arr(6) + uint(2) + uint(7) + arr(1) + uint(1)
    + good[4:], "SL_ERR_DECODE_TYPE")
bad("to-negative-local", "an id [node, -1]", arr(6) + uint(2) + uint(7) + arr(2) + uint(1)
    + b"\xff" + good[4:], "SL_ERR_DECODE_TYPE")
bad("to-str", "an id as a str", arr(6) + uint(2) + uint(7) + b"\xa1x" + good[4:],
    "SL_ERR_DECODE_TYPE")
bad("to-fixext", "an id as a fixext 8 of type 5", arr(6) + uint(2) + uint(7) + b"\xd7\x05"
    + bytes(8) + good[4:], "SL_ERR_DECODE_EXT")
bad("to-deep-nesting-0x91", "a run of 0x91 where an id goes: [[[...]]] is not an id",
    arr(6) + uint(2) + uint(7) + b"\x91" * 64 + b"\x01" + good[4:], "SL_ERR_DECODE_TYPE")
bad("from-huge-array", "an id announcing an array of 2^32-1", arr(6) + uint(2) + uint(7)
    + uint(5) + b"\xdd\xff\xff\xff\xff" + good[5:], "SL_ERR_DECODE_LENGTH")
bad("from-nested-id", "an id whose node is itself an array", arr(6) + uint(2) + uint(7)
    + uint(5) + arr(2) + arr(2) + uint(1) + uint(2) + uint(3) + good[5:], "SL_ERR_DECODE_TYPE")

# corr
bad("corr-negative", "corr as int 8", head[:-1] + b"\xd0\x80" + good[len(head):],
    "SL_ERR_DECODE_TYPE")
bad("corr-nil", "corr as nil (0 means none)", head[:-1] + b"\xc0" + good[len(head):],
    "SL_ERR_DECODE_TYPE")

# payload
bad("payload-str", "payload as a str", head + b"\xa3abc", "SL_ERR_DECODE_TYPE")
bad("payload-nil", "payload as nil (empty is c4 00)", head + b"\xc0", "SL_ERR_DECODE_TYPE")
bad("payload-huge-bin32", "a bin 32 announcing 2^32-1 bytes", head + b"\xc6\xff\xff\xff\xff",
    "SL_ERR_DECODE_LENGTH")
bad("payload-bin8-short", "a bin 8 announcing 200 bytes with 3 present",
    head + b"\xc4\xc8" + b"abc", "SL_ERR_DECODE_LENGTH")
bad("payload-over-max-bin", "a 64-byte payload against max_bin_len 63", good,
    "SL_ERR_DECODE_LENGTH", limits={"max_bin_len": 63})
bad("payload-fixext16", "payload as fixext 16 of type 0x7f", head + b"\xd8\x7f" + bytes(16),
    "SL_ERR_DECODE_EXT")
bad("payload-header-cut", "cut inside the bin 16 length", head + b"\xc5\x01",
    "SL_ERR_DECODE_TRUNCATED")

# status / code
st = arr(7) + good[1:]
bad("status-str", "status as a str", st + b"\xa1x", "SL_ERR_DECODE_TYPE")
bad("status-over-int32", "status 2^31 does not fit int32", st + b"\xce\x80\x00\x00\x00",
    "SL_ERR_DECODE_TYPE")
bad("status-int64-small", "status -2^31-1 as int 64 does not fit int32",
    st + b"\xd3" + struct.pack(">q", -(1 << 31) - 1), "SL_ERR_DECODE_TYPE")
bad("status-missing", "7 elements announced, the status is missing (0 bytes left for 1)", st,
    "SL_ERR_DECODE_TRUNCATED")
bad("code-c1", "code as 0xc1", arr(8) + good[1:] + uint(1) + b"\xc1", "SL_ERR_DECODE_RESERVED")

# --------------------------------------------------------------- validator

checks = []


def chk(name, desc, hexbytes, err=None, limits=None):
    v = {"name": name, "desc": desc, "hex": hexbytes.hex()}
    if limits:
        v["limits"] = limits
    if err:
        v["error"] = err
    else:
        v["ok"] = True
    checks.append(v)


chk("nil", "one nil", b"\xc0")
chk("array-of-ints", "[1, 2, 3]", b"\x93\x01\x02\x03")
chk("map", "{\"a\": 1, \"b\": [true, false]}", b"\x82\xa1a\x01\xa1b\x92\xc3\xc2")
chk("scalars", "[nil, -1, 2^64-1, -2^63, 1.5f, 1.5, \"\", bin(0)]",
    b"\x98\xc0\xff\xcf" + b"\xff" * 8 + b"\xd3\x80" + bytes(7) + b"\xca\x3f\xc0\x00\x00"
    + b"\xcb\x3f\xf8" + bytes(6) + b"\xa0\xc4\x00")
chk("array16-and-map16", "array 16 of 1 holding a map 16 of 1 pair", b"\xdc\x00\x01\xde\x00\x01"
    + b"\x01\x02")
chk("depth-32", "32 nested arrays around nil: exactly the default max_depth",
    b"\x91" * 32 + b"\xc0")
chk("empty-containers", "[[], {}]", b"\x92\x90\x80")
chk("fixext-allowed", "fixext 1 of type 1 with ext 1 allowed", b"\xd4\x01\x00",
    limits={"ext_allow": [1]})
chk("timestamp-allowed", "timestamp 32 (ext -1) with ext -1 allowed", b"\xd6\xff" + bytes(4),
    limits={"ext_allow": [-1]})
chk("budget-exact", "[1, 2, 3] counts 4 elements: fits max_elements 4",
    b"\x93\x01\x02\x03", limits={"max_elements": 4})

chk("empty", "no bytes", b"", "SL_ERR_DECODE_TRUNCATED")
chk("header-cut", "uint 16 with one byte", b"\xcd\x01", "SL_ERR_DECODE_TRUNCATED")
chk("element-missing", "[nil, <missing>]: the count fits, the second header does not",
    b"\x92\xcd\x01", "SL_ERR_DECODE_TRUNCATED")
chk("count-over-remaining", "an array of 3 with 2 bytes left", b"\x93\x01\x02",
    "SL_ERR_DECODE_LENGTH")
chk("map-count-over-remaining", "a map of 1 pair with 1 byte left", b"\x81\x01",
    "SL_ERR_DECODE_LENGTH")
chk("depth-33", "33 nested arrays around nil", b"\x91" * 33 + b"\xc0", "SL_ERR_DECODE_DEPTH")
chk("deep-0x91-run", "a run of 200 x 0x91 and nothing else", b"\x91" * 200,
    "SL_ERR_DECODE_DEPTH")
chk("deep-maps", "40 nested maps {nil: {nil: ...}}", b"\x81\xc0" * 40 + b"\xc0",
    "SL_ERR_DECODE_DEPTH")
chk("depth-0-limit", "an empty array when max_depth is 0", b"\x90", "SL_ERR_DECODE_DEPTH",
    limits={"max_depth": 0})
chk("huge-array32", "array 32 of 2^32-1", b"\xdd\xff\xff\xff\xff", "SL_ERR_DECODE_LENGTH")
chk("huge-map32", "map 32 of 2^32-1 pairs", b"\xdf\xff\xff\xff\xff", "SL_ERR_DECODE_LENGTH")
chk("huge-str32", "str 32 of 2^32-1 bytes", b"\xdb\xff\xff\xff\xff", "SL_ERR_DECODE_LENGTH")
chk("huge-bin32", "bin 32 of 2^32-1 bytes", b"\xc6\xff\xff\xff\xff", "SL_ERR_DECODE_LENGTH")
chk("huge-ext32-allowed", "ext 32 of 2^32-1 bytes, type 1 allowed", b"\xc9\xff\xff\xff\xff\x01",
    "SL_ERR_DECODE_LENGTH", limits={"ext_allow": [1]})
chk("huge-array-nested", "[array 32 of 2^32-1]", b"\x91\xdd\xff\xff\xff\xff",
    "SL_ERR_DECODE_LENGTH")
chk("str-over-limit", "\"abc\" with max_str_len 2", b"\xa3abc", "SL_ERR_DECODE_LENGTH",
    limits={"max_str_len": 2})
chk("bin-over-limit", "bin of 3 with max_bin_len 2", b"\xc4\x03abc", "SL_ERR_DECODE_LENGTH",
    limits={"max_bin_len": 2})
chk("fixext-1", "fixext 1 of type 1", b"\xd4\x01\x00", "SL_ERR_DECODE_EXT")
chk("fixext-16", "fixext 16 of type 0x7f", b"\xd8\x7f" + bytes(16), "SL_ERR_DECODE_EXT")
chk("ext8-empty", "ext 8 of 0 bytes, type 5", b"\xc7\x00\x05", "SL_ERR_DECODE_EXT")
chk("ext16", "ext 16 of 1 byte, type 2", b"\xc8\x00\x01\x02\x00", "SL_ERR_DECODE_EXT")
chk("ext32-huge", "ext 32 of 2^32-1 bytes, type 3: the type is refused before the length",
    b"\xc9\xff\xff\xff\xff\x03", "SL_ERR_DECODE_EXT")
chk("timestamp", "timestamp 32 (ext -1) is not allowed by default", b"\xd6\xff" + bytes(4),
    "SL_ERR_DECODE_EXT")
chk("ext-other-allowed", "fixext 1 of type 2 when only type 1 is allowed", b"\xd4\x02\x00",
    "SL_ERR_DECODE_EXT", limits={"ext_allow": [1]})
chk("ext-as-map-key", "{fixext1: 1}", b"\x81\xd4\x01\x00\x01", "SL_ERR_DECODE_EXT")
chk("ext8-type-missing", "ext 8 header without its type byte", b"\xc7\x01",
    "SL_ERR_DECODE_TRUNCATED")
chk("reserved-c1", "0xc1", b"\xc1", "SL_ERR_DECODE_RESERVED")
chk("reserved-c1-nested", "[0xc1]", b"\x91\xc1", "SL_ERR_DECODE_RESERVED")
chk("trailing", "two values", b"\x01\x02", "SL_ERR_DECODE_TRAILING")
chk("budget", "[1, 2, 3, 4] counts 5 elements, over max_elements 4", b"\x94\x01\x02\x03\x04",
    "SL_ERR_DECODE_BUDGET", limits={"max_elements": 4})
chk("budget-map", "{1: 2, 3: 4} counts 5 elements, over max_elements 4",
    b"\x82\x01\x02\x03\x04", "SL_ERR_DECODE_BUDGET", limits={"max_elements": 4})
chk("too-big", "5 bytes against max_size 4", b"\x94\x01\x02\x03\x04", "SL_ERR_DECODE_TOO_BIG",
    limits={"max_size": 4})

# -------------------------------------------------------------------- frames

frames = []


def frm(name, length, hexbytes=None, err=None, max_frame=None):
    v = {"name": name}
    if err:
        v["hex"] = hexbytes.hex()
        v["error"] = err
    else:
        n = 1 if length < 64 else 2 if length < 16384 else 4 if length < 1 << 30 else 8
        canon = (length | ((n.bit_length() - 1) << (8 * n - 2))).to_bytes(n, "big")
        v["hex"] = (hexbytes or canon).hex()
        if hexbytes is not None and hexbytes != canon:
            v["canonical_hex"] = canon.hex()
        v["length"] = str(length)
    if max_frame is not None:
        v["max_frame"] = str(max_frame)
    frames.append(v)


for n in (0, 37, 63, 64, 15293, 16383, 16384, 494878333, (1 << 30) - 1, 1 << 30,
          151288809941952652, (1 << 62) - 1):
    frm("len-%d" % n, n)
frm("rfc9000-two-byte-37", 37, bytes.fromhex("4025"))
frm("non-minimal-8-byte-0", 0, bytes.fromhex("c000000000000000"))
frm("over-max", None, bytes.fromhex("7fff"), "SL_ERR_DECODE_TOO_BIG", max_frame=16382)
frm("over-default-max", None, bytes.fromhex("c000000004000401"), "SL_ERR_DECODE_TOO_BIG",
    max_frame=64 * 1024 * 1024 + 1024)

doc = {
    "format": "starling wire test vectors",
    "version": 1,
    "notes": [
        "hex: the bytes. 64-bit values (node, local, corr, implied nodes, frame lengths,"
        " max_frame) are decimal strings; other numbers are JSON numbers.",
        "envelope vectors: decode hex with sl_envelope_decode(implied_to_node,"
        " implied_from_node, limits, consumed = NULL). Either 'envelope' (the decoded fields;"
        " payload as hex) or 'error' (the sl_err name) is given. Encoding the decoded fields"
        " must give 'canonical_hex' if present, else 'hex'.",
        "msgpack vectors: sl_msgpack_check(hex, limits, consumed = NULL) returns SL_OK"
        " ('ok': true) or 'error'.",
        "limits: fields of sl_limits that differ from sl_limits_default(); ext_allow is a"
        " list of allowed ext types (-128..127).",
        "frame vectors: sl_frame_read_header(hex, max_frame or 2^62-1) gives 'length' and"
        " consumes all of hex, or 'error'; writing 'length' gives 'canonical_hex' if"
        " present, else 'hex'.",
        "Generated by schemas/gen_vectors.py; see schemas/README.md.",
    ],
    "envelope": vectors,
    "msgpack": checks,
    "frame": frames,
}
print(json.dumps(doc, indent=1))
