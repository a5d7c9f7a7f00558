#!/usr/bin/env python3
"""Make insightface-style verification .bin fixtures (pickled pairs).

Standard library only. Run from anywhere:

    python3 scripts/make_bin_fixtures.py [OUT_DIR]

OUT_DIR defaults to crates/poseface-data/tests/fixtures/bin/ (relative to the
repository root). A verification .bin is a pickle of the 2-tuple
(list of image bytes, list of bool); pair k is images 2k and 2k+1.

Files written (all hold the same 8 PNG images / 4 pairs, issame = T,F,T,F):
    py3_proto{2,3,4,5}.bin  pickle.dump((bins, issame), f, protocol=P) with
                            Python 3 `bytes`. Protocol 2 stores every bytes
                            object as _codecs.encode(<latin-1 str>, 'latin1')
                            (GLOBAL + BINUNICODE + REDUCE), as real files do.
    py2_proto2.bin          hand-assembled Python 2 cPickle, protocol 2, of
                            (list of str, list of bool): SHORT_BINSTRING /
                            BINSTRING, BINPUT memo, MARK/APPENDS, NEWTRUE/NEWFALSE,
                            TUPLE2.
    py2_proto0.bin          hand-assembled Python 2 cPickle protocol 0 (text):
                            MARK LIST, STRING with Python 2 repr() escaping, PUT,
                            APPEND, I01/I00 bools, MARK ... TUPLE.
    py2_pickle_proto{2,0}.bin  the same two as written by Python 2's pure
                            `pickle` module (different memo numbering, the
                            tuple is memoized too).
    expected.json           sha256 of each image, issame, and the file list.
    hostile/*.bin           small malformed or malicious pickles (see
                            hostile/README.md). Never unpickle them with a
                            full unpickler; this script only inspects them with
                            pickletools or an unpickler that refuses globals.

The hand-assembled py2 files were checked to be byte-identical to what
Python 2.7.18 writes (cPickle.dump and pickle.dump respectively) for the same
images; Python 2 is not needed to run this script.
"""

import hashlib
import io
import json
import os
import pickle
import pickletools
import struct
import sys
import zlib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "crates", "poseface-data", "tests", "fixtures", "bin")
ISSAME = [True, False, True, False]


# --------------------------------------------------------------------------
# tiny deterministic PNG writer (stored deflate blocks)
# --------------------------------------------------------------------------

def _png_chunk(ctype, data):
    body = ctype + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _zlib_stored(raw):
    out = bytearray(b"\x78\x01")
    pos = 0
    while True:
        block = raw[pos:pos + 65535]
        pos += len(block)
        final = 1 if pos >= len(raw) else 0
        out += bytes([final]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + block
        if final:
            break
    out += struct.pack(">I", zlib.adler32(raw) & 0xFFFFFFFF)
    return bytes(out)


def make_png(width, height, channels, seed, text=None):
    """8-bit grey (channels=1) or RGB (channels=3) PNG; optional tEXt chunk."""
    ctype = {1: 0, 3: 2}[channels]
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            for c in range(channels):
                rows.append((seed * 53 + x * 17 + y * 31 + c * 89 + x * y * (seed + 1)) & 0xFF)
    png = b"\x89PNG\r\n\x1a\n"
    png += _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, ctype, 0, 0, 0))
    if text is not None:
        png += _png_chunk(b"tEXt", text)
    png += _png_chunk(b"IDAT", _zlib_stored(bytes(rows)))
    png += _png_chunk(b"IEND", b"")
    return png


def make_images():
    specs = [(8, 8, 1, None), (16, 16, 3, None), (9, 8, 1, None), (8, 12, 3, None),
             (10, 10, 1, b"Comment\0it's a fixture"), (12, 9, 1, None),
             (8, 9, 3, b"Comment\0back\\slash \"quoted\""), (11, 11, 1, None)]
    return [make_png(w, h, c, seed, text) for seed, (w, h, c, text) in enumerate(specs)]


# --------------------------------------------------------------------------
# hand-assembled Python 2 pickles
# --------------------------------------------------------------------------

class _Py2Writer:
    """Emits opcodes the way Python 2.7 does for our object shape.

    flavor "cpickle": cPickle.dump(obj, f, proto). Memo ids start at 1 and
    objects whose reference count is below 2 are not memoized; for
    cPickle.dump((bins, issame), f, proto) with bins/issame held in variables
    that means every string and both lists get a PUT but the temporary
    top-level tuple does not.
    flavor "pickle": pure-Python pickle.py. Memo ids start at 0 and every
    string, list and tuple is memoized.
    """

    def __init__(self, proto, flavor):
        self.proto = proto
        self.flavor = flavor
        self.out = bytearray()
        self.memo_len = 1 if flavor == "cpickle" else 0

    def put(self):
        i = self.memo_len
        self.memo_len += 1
        if self.proto == 0:
            self.out += b"p%d\n" % i
        elif i < 256:
            self.out += b"q" + bytes([i])           # BINPUT
        else:
            self.out += b"r" + struct.pack("<I", i)  # LONG_BINPUT

    def string(self, s):
        if self.proto == 0:
            self.out += b"S" + py2_str_repr(s) + b"\n"  # STRING
        elif len(s) < 256:
            self.out += b"U" + bytes([len(s)]) + s   # SHORT_BINSTRING
        else:
            self.out += b"T" + struct.pack("<i", len(s)) + s  # BINSTRING
        self.put()

    def boolean(self, b):
        if self.proto >= 2:
            self.out += b"\x88" if b else b"\x89"    # NEWTRUE / NEWFALSE
        else:
            self.out += b"I01\n" if b else b"I00\n"  # INT spelled as bool

    def list(self, items, save_item):
        if self.proto == 0:
            self.out += b"(l"                        # MARK LIST
            self.put()
            for x in items:
                save_item(x)
                self.out += b"a"                     # APPEND
            return
        self.out += b"]"                             # EMPTY_LIST
        self.put()
        for start in range(0, len(items), 1000):     # pickle.py batches by 1000
            batch = items[start:start + 1000]
            if len(batch) > 1:
                self.out += b"("                     # MARK
                for x in batch:
                    save_item(x)
                self.out += b"e"                     # APPENDS
            else:
                save_item(batch[0])
                self.out += b"a"                     # APPEND


def py2_str_repr(s):
    """Python 2 repr() of a byte string (stringobject.c string_repr)."""
    quote = b'"' if (b"'" in s and b'"' not in s) else b"'"
    out = bytearray(quote)
    for c in s:
        ch = bytes([c])
        if ch == quote or ch == b"\\":
            out += b"\\" + ch
        elif ch == b"\t":
            out += b"\\t"
        elif ch == b"\n":
            out += b"\\n"
        elif ch == b"\r":
            out += b"\\r"
        elif c < 0x20 or c >= 0x7F:
            out += b"\\x%02x" % c
        else:
            out += ch
    return bytes(out + quote)


def py2_pickle(bins, issame, proto, flavor):
    w = _Py2Writer(proto, flavor)
    if proto >= 2:
        w.out += b"\x80\x02"                         # PROTO 2
        w.list(bins, w.string)
        w.list(issame, w.boolean)
        w.out += b"\x86"                             # TUPLE2
    else:
        w.out += b"("                                # MARK
        w.list(bins, w.string)
        w.list(issame, w.boolean)
        w.out += b"t"                                # TUPLE
    if flavor == "pickle":
        w.put()
    w.out += b"."                                    # STOP
    return bytes(w.out)


# --------------------------------------------------------------------------
# hostile pickles (bytes only; never fully unpickled)
# --------------------------------------------------------------------------

def hostile_pickles(bins):
    small = bins[:2]
    h = {}
    # GLOBAL os.system + REDUCE as the first element of the image list.
    cmd = b"echo poseface hostile fixture was executed"
    h["global_os_system_reduce.bin"] = (
        b"\x80\x02]q\x00(cos\nsystem\nq\x01U" + bytes([len(cmd)]) + cmd
        + b"\x85q\x02Rq\x03U\x04abcde]q\x04(\x88e\x86q\x05.")
    # BINBYTES declaring 0xFFFFFFF0 bytes, followed by only a few.
    h["binbytes_huge_len_truncated.bin"] = (
        b"\x80\x03]q\x00(B" + struct.pack("<I", 0xFFFFFFF0) + b"\x89PNG\r\n\x1a\nonly a few bytes")
    # 0xFF is not a pickle opcode in any protocol.
    h["unknown_opcode_0xff.bin"] = b"\x80\x02]q\x00(C\x03abc\xffe]q\x01\x88a\x86q\x02."
    # a valid protocol-3 pickle cut inside the second image's BINBYTES payload.
    full = pickle.dumps((small, [True]), protocol=3)
    cut = full.index(small[1]) + len(small[1]) // 2
    h["truncated_midway.bin"] = full[:cut]
    # well-formed pickles with the wrong shape
    h["tuple_of_three_lists.bin"] = pickle.dumps((small, [True], []), protocol=3)
    h["issame_len_mismatch.bin"] = pickle.dumps((bins[:4], [True, False, True]), protocol=3)
    h["odd_image_count.bin"] = pickle.dumps((bins[:3], [True]), protocol=3)
    # BINGET of a memo slot that was never PUT.
    h["binget_undefined_memo.bin"] = b"\x80\x02]q\x00(h\x07e]q\x01\x88a\x86q\x02."
    return h


HOSTILE_README = """\
# Hostile verification-.bin fixtures

Generated by `scripts/make_bin_fixtures.py`. Each file is a small pickle that a
.bin loader must reject (or report as malformed) without executing anything,
without allocating the declared length, and without panicking. Do NOT load
them with Python's `pickle.load`.

| file | what it is | expected outcome |
|---|---|---|
| `global_os_system_reduce.bin` | protocol 2; first image-list element is `GLOBAL 'os' 'system'` called via `REDUCE` with a harmless `echo` string | reject on GLOBAL/REDUCE; nothing runs |
| `binbytes_huge_len_truncated.bin` | protocol 3; `BINBYTES` declaring 0xFFFFFFF0 bytes, followed by ~24 bytes then EOF | reject as truncated, no 4 GiB allocation |
| `unknown_opcode_0xff.bin` | protocol 2; byte 0xFF (not an opcode in any protocol) inside the image list | reject: unknown opcode |
| `truncated_midway.bin` | valid protocol-3 pickle of 1 pair cut in the middle of the second image's `BINBYTES` payload (no STOP) | reject as truncated |
| `tuple_of_three_lists.bin` | well-formed pickle of `(images, [True], [])` (TUPLE3) | reject: expected a 2-tuple |
| `issame_len_mismatch.bin` | well-formed pickle of 4 images (2 pairs) with 3 issame flags | reject: pair count mismatch |
| `odd_image_count.bin` | well-formed pickle of 3 images with 1 issame flag | reject: odd number of images |
| `binget_undefined_memo.bin` | protocol 2; `BINGET 7` with memo slot 7 never stored | reject: bad memo reference |
"""


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError("global %s.%s refused" % (module, name))


def _safe_loads(data):
    """Unpickle with globals refused (protocol-2 bytes come via _codecs.encode,
    so only that one callable is allowed)."""

    class _Codecs(_NoGlobals):
        def find_class(self, module, name):
            if (module, name) == ("_codecs", "encode"):
                import _codecs
                return _codecs.encode
            return super().find_class(module, name)

    return _Codecs(io.BytesIO(data), encoding="bytes").load()


def check_hostile(name, data):
    ops = []
    try:
        for op, arg, _pos in pickletools.genops(data):
            ops.append((op.name, arg))
        dis_err = None
    except Exception as e:  # pickletools reports malformed input this way
        dis_err = e
    if name.startswith("global_os_system"):
        assert ("GLOBAL", "os system") in ops and ("REDUCE", None) in ops, ops
        try:
            _NoGlobals(io.BytesIO(data)).load()
        except pickle.UnpicklingError as e:
            assert "os.system refused" in str(e)
        else:
            raise AssertionError("restricted unpickler did not refuse")
        return
    if name in ("binbytes_huge_len_truncated.bin", "unknown_opcode_0xff.bin", "truncated_midway.bin"):
        assert dis_err is not None, name
    try:
        obj = _NoGlobals(io.BytesIO(data)).load()
    except Exception:
        obj = None
    if name == "binget_undefined_memo.bin":
        assert obj is None
    elif name == "tuple_of_three_lists.bin":
        assert isinstance(obj, tuple) and len(obj) == 3
    elif name == "issame_len_mismatch.bin":
        assert len(obj[0]) // 2 != len(obj[1]) and len(obj[0]) % 2 == 0
    elif name == "odd_image_count.bin":
        assert len(obj[0]) % 2 == 1
    else:
        assert obj is None, name


# --------------------------------------------------------------------------

def main(argv):
    out_dir = argv[1] if len(argv) > 1 else DEFAULT_OUT
    bins = make_images()
    assert len(set(bins)) == len(bins) == 2 * len(ISSAME)
    assert any(len(b) >= 256 for b in bins) and any(len(b) < 256 for b in bins)
    expected_obj = (bins, ISSAME)

    files = {}
    for proto in (2, 3, 4, 5):
        buf = io.BytesIO()
        pickle.dump((bins, ISSAME), buf, protocol=proto)
        files["py3_proto%d.bin" % proto] = buf.getvalue()
    files["py2_proto2.bin"] = py2_pickle(bins, ISSAME, 2, "cpickle")
    files["py2_proto0.bin"] = py2_pickle(bins, ISSAME, 0, "cpickle")
    files["py2_pickle_proto2.bin"] = py2_pickle(bins, ISSAME, 2, "pickle")
    files["py2_pickle_proto0.bin"] = py2_pickle(bins, ISSAME, 0, "pickle")

    # verification
    assert b"_codecs" in files["py3_proto2.bin"]
    for name in ("py2_proto2.bin", "py2_pickle_proto2.bin"):
        p2ops = [op.name for op, _a, _p in pickletools.genops(files[name])]
        assert "BINSTRING" in p2ops and "SHORT_BINSTRING" in p2ops and "APPENDS" in p2ops
    # Python 3's pickletools decodes STRING arguments as ASCII and so cannot
    # disassemble protocol-0 pickles of binary Python 2 strings; check the
    # text layout directly instead (pickle.loads below checks the content).
    p0 = files["py2_proto0.bin"]
    assert p0.startswith(b"((lp1\nS") and b"(lp10\nI01\naI00\na" in p0
    assert p0.endswith(b"I00\nat.") and b"\np2\na" in p0
    p0 = files["py2_pickle_proto0.bin"]
    assert p0.startswith(b"((lp0\nS") and b"(lp9\nI01\naI00\na" in p0
    assert p0.endswith(b"atp10\n.") and b"\np1\na" in p0
    quotes = {py2_str_repr(b)[:1] for b in bins}
    assert quotes == {b"'", b'"'}, "want both quote styles of repr()"
    for name, data in files.items():
        if "proto0" not in name:
            pickletools.dis(data, out=io.StringIO())  # raises on malformed streams
        assert pickle.loads(data, encoding="bytes") == expected_obj, name
        assert _safe_loads(data) == expected_obj, name
        assert data.endswith(b".")

    hostile = hostile_pickles(bins)
    for name, data in hostile.items():
        check_hostile(name, data)

    os.makedirs(os.path.join(out_dir, "hostile"), exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    for name, data in hostile.items():
        with open(os.path.join(out_dir, "hostile", name), "wb") as f:
            f.write(data)
    with open(os.path.join(out_dir, "hostile", "README.md"), "w", newline="\n") as f:
        f.write(HOSTILE_README)
    expected = {
        "files": sorted(files),
        "images_sha256": [hashlib.sha256(b).hexdigest() for b in bins],
        "issame": ISSAME,
    }
    with open(os.path.join(out_dir, "expected.json"), "w", newline="\n") as f:
        f.write(json.dumps(expected, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
