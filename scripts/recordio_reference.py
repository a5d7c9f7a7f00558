#!/usr/bin/env python3
"""Independent reference writer/reader for insightface-style MXNet RecordIO.

Standard library only (no numpy, no mxnet). Written from the format
description, not from any other project's code.

Usage:
    python3 scripts/recordio_reference.py write DIR   # fixture -> DIR/{train.rec,train.idx,property}
    python3 scripts/recordio_reference.py read DIR    # JSON description of DIR on stdout

On-disk format
--------------
Every record is stored as one or more *parts*:

    u32 magic 0xced7230a (LE) | u32 lrec = (cflag << 29) | length | data | zero pad to 4

The writer scans the payload at 4-byte aligned offsets; each aligned occurrence
of the magic word ends the current part (the magic word itself is dropped).
cflag: 0 = whole record, 1 = first part, 2 = middle part, 3 = last part. The
reader joins parts, re-inserting the 4 magic bytes between consecutive parts.

train.idx holds "<key>\\t<offset of the record's first part header>\\n" lines.

Payload = IRHeader '<IfQQ' (flag u32, label f32, id u64, id2 u64; 24 bytes),
then `flag` extra f32 labels when flag > 0, then the image bytes.

Fixture layout produced by `write` (N = 14 records, keys 0..13):
    key 0       flag=2, labels [9, 12]: images are keys 1..8, identities 9..11
    keys 1..8   PNG image records (all decodable) of identities 0,0,0,1,1,1,2,2
                key 5: flag=3, labels [1, 0.5, -2.25]
                key 7: PNG with a private ancillary chunk 'rcIo' holding the magic
                       word at aligned payload offsets (3 adjacent + 1 separate)
                key 8: id = 2**63 + 5, id2 = 0x0123456789abcdef (u64 range)
    keys 9..11  identity records, flag=2, labels [first_image, end_image)
    key 12      extra record (outside the header ranges): empty image part
    key 13      extra record (outside the header ranges): NOT an image; its image
                bytes start with two adjacent magic words and end with one, so the
                first middle parts and the last part are empty
"""

import hashlib
import json
import os
import struct
import sys
import zlib

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
IRHEADER = struct.Struct("<IfQQ")
LEN_MASK = (1 << 29) - 1


class FormatError(Exception):
    pass


# --------------------------------------------------------------------------
# tiny deterministic PNG writer (stored deflate blocks: independent of zlib
# version/compression level, so the fixture bytes are reproducible)
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


def make_png(width, height, channels, seed, extra_chunks=()):
    """8-bit grey (channels=1) or RGB (channels=3) PNG with seed-dependent pixels."""
    ctype = {1: 0, 3: 2}[channels]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None
        for x in range(width):
            for c in range(channels):
                rows.append((seed * 37 + x * 13 + y * 29 + c * 71 + x * y * seed) & 0xFF)
    png = b"\x89PNG\r\n\x1a\n"
    png += _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, ctype, 0, 0, 0))
    for ctype_name, data in extra_chunks:
        png += _png_chunk(ctype_name, data)
    png += _png_chunk(b"IDAT", _zlib_stored(bytes(rows)))
    png += _png_chunk(b"IEND", b"")
    return png


# --------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------

def pack_payload(flag, label, id_, id2, extra_labels, image):
    if flag != len(extra_labels):
        raise ValueError("flag must equal number of extra labels")
    return (IRHEADER.pack(flag, label, id_, id2)
            + b"".join(struct.pack("<f", v) for v in extra_labels)
            + image)


def split_parts(payload):
    """dmlc writer rule: list of (cflag, bytes) parts for one payload."""
    parts = []
    dptr = 0
    lower_align = (len(payload) >> 2) << 2
    for i in range(0, lower_align, 4):
        if payload[i:i + 4] == MAGIC_BYTES:
            parts.append((1 if not parts else 2, payload[dptr:i]))
            dptr = i + 4
    parts.append((3 if parts else 0, payload[dptr:]))
    return parts


def encode_record(payload):
    out = bytearray()
    for cflag, data in split_parts(payload):
        if len(data) > LEN_MASK:
            raise ValueError("part too long")
        out += struct.pack("<II", MAGIC, (cflag << 29) | len(data)) + data
        out += b"\0" * (-len(data) % 4)
    return bytes(out)


def fixture_records():
    """The intended records: list of dicts with flag,label,id,id2,extra_labels,image."""
    images_per_identity = [3, 3, 2]
    num_images = sum(images_per_identity)
    a = 1 + num_images                      # first identity record key
    b = a + len(images_per_identity)        # one past the last identity record
    recs = [dict(flag=2, label=0.0, id=0, id2=0, extra_labels=[float(a), float(b)], image=b"")]

    # aligned payload offset 24 == image offset 0; chunk data starts at image
    # offset 41, so 3 pad bytes put the first magic at image offset 44.
    magic_chunk = b"\0\0\0" + MAGIC_BYTES * 3 + b"rcio" + MAGIC_BYTES + b"tail!!"
    sizes = [(8, 8, 1), (16, 16, 3), (9, 11, 1), (12, 10, 3),
             (16, 9, 1), (10, 16, 3), (11, 8, 3), (13, 13, 1)]
    ranges = []
    key = 1
    for ident, count in enumerate(images_per_identity):
        first = key
        for _ in range(count):
            w, h, c = sizes[key - 1]
            extra = [(b"rcIo", magic_chunk)] if key == 7 else []
            rec = dict(flag=0, label=float(ident), id=key, id2=0, extra_labels=[],
                       image=make_png(w, h, c, seed=key, extra_chunks=extra))
            if key == 5:
                rec.update(flag=3, label=0.0, extra_labels=[float(ident), 0.5, -2.25])
            if key == 8:
                rec.update(id=2 ** 63 + 5, id2=0x0123456789ABCDEF)
            recs.append(rec)
            key += 1
        ranges.append((first, key))
    for first, end in ranges:
        recs.append(dict(flag=2, label=0.0, id=len(recs), id2=0,
                         extra_labels=[float(first), float(end)], image=b""))
    assert len(recs) == b
    # extras outside the header's ranges
    recs.append(dict(flag=0, label=2.0, id=len(recs), id2=0, extra_labels=[], image=b""))
    odd = MAGIC_BYTES * 2 + b"not a png, magic at start+end" + b"\0\0\0" + MAGIC_BYTES
    assert len(odd) % 4 == 0
    recs.append(dict(flag=0, label=1.0, id=len(recs), id2=0, extra_labels=[], image=odd))
    return recs, len(images_per_identity)


def write_fixture(out_dir):
    recs, num_classes = fixture_records()
    os.makedirs(out_dir, exist_ok=True)
    rec_bytes = bytearray()
    idx_lines = []
    for key, r in enumerate(recs):
        payload = pack_payload(r["flag"], r["label"], r["id"], r["id2"], r["extra_labels"], r["image"])
        idx_lines.append("%d\t%d\n" % (key, len(rec_bytes)))
        rec_bytes += encode_record(payload)
    with open(os.path.join(out_dir, "train.rec"), "wb") as f:
        f.write(rec_bytes)
    with open(os.path.join(out_dir, "train.idx"), "w", newline="\n") as f:
        f.write("".join(idx_lines))
    with open(os.path.join(out_dir, "property"), "w", newline="\n") as f:
        f.write("%d,112,112\n" % num_classes)
    self_check(out_dir, recs)


def self_check(out_dir, recs):
    """Read back with the independent reader and compare with the intent."""
    got = read_dir(out_dir)["records"]
    assert len(got) == len(recs), (len(got), len(recs))
    full = read_all_payloads(out_dir)
    split_count = 0
    not_aligned = 0
    for key, (g, r) in enumerate(zip(got, recs)):
        payload = pack_payload(r["flag"], r["label"], r["id"], r["id2"], r["extra_labels"], r["image"])
        assert full[key] == payload, key
        assert g["key"] == key
        assert g["flag"] == r["flag"] and g["label"] == r["label"]
        assert g["extra_labels"] == r["extra_labels"]
        assert g["id"] == r["id"] and g["id2"] == r["id2"]
        assert g["payload_len"] == len(payload)
        assert g["payload_sha256"] == hashlib.sha256(r["image"]).hexdigest()
        split_count += len(split_parts(payload)) > 1
        not_aligned += len(payload) % 4 != 0
    # make sure the edge cases the fixture promises are really there
    assert split_count >= 2, split_count
    assert not_aligned >= 1, not_aligned
    cflags = [c for k in (7, 13) for c, _ in split_parts(full[k])]
    assert cflags.count(2) >= 2 and 3 in cflags
    empties = [len(d) for c, d in split_parts(full[13])]
    assert empties[0] > 0 and 0 in empties and empties[-1] == 0
    assert any(len(split_parts(full[k])) > 1 and len(full[k]) % 4 for k in range(len(full)))


# --------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------

def read_record_at(buf, offset):
    """Decode the record whose first part header is at `offset`; returns payload bytes."""
    pieces = []
    pos = offset
    expect_first = True
    while True:
        if pos < 0 or pos + 8 > len(buf):
            raise FormatError("offset %d: truncated part header (file is %d bytes)" % (pos, len(buf)))
        magic, lrec = struct.unpack_from("<II", buf, pos)
        if magic != MAGIC:
            raise FormatError("offset %d: bad magic 0x%08x" % (pos, magic))
        cflag, length = lrec >> 29, lrec & LEN_MASK
        data_start = pos + 8
        if data_start + length > len(buf):
            raise FormatError("offset %d: part length %d runs past end of file" % (pos, length))
        padded = length + (-length % 4)
        if data_start + padded > len(buf):
            raise FormatError("offset %d: missing padding after part" % pos)
        pieces.append(buf[data_start:data_start + length])
        part_pos, pos = pos, data_start + padded
        if expect_first:
            if cflag == 0:
                return pieces[0]
            if cflag != 1:
                raise FormatError("offset %d: record starts with cflag %d" % (offset, cflag))
            expect_first = False
        elif cflag == 3:
            return MAGIC_BYTES.join(pieces)
        elif cflag != 2:
            raise FormatError("offset %d: unexpected cflag %d inside a multi-part record" % (part_pos, cflag))


def parse_idx(text):
    entries = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.strip() == "":
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2:
            raise FormatError("train.idx line %d: expected '<key>\\t<offset>'" % lineno)
        try:
            key, off = int(fields[0]), int(fields[1])
        except ValueError:
            raise FormatError("train.idx line %d: non-integer field" % lineno)
        if off < 0:
            raise FormatError("train.idx line %d: negative offset" % lineno)
        entries.append((key, off))
    return entries


def parse_payload(payload):
    if len(payload) < IRHEADER.size:
        raise FormatError("payload of %d bytes is shorter than the 24-byte IRHeader" % len(payload))
    flag, label, id_, id2 = IRHEADER.unpack_from(payload, 0)
    start = IRHEADER.size
    extra = []
    if flag > 0:
        end = start + 4 * flag
        if end > len(payload):
            raise FormatError("flag %d needs %d label bytes, payload has %d" % (flag, 4 * flag, len(payload) - start))
        extra = list(struct.unpack_from("<%df" % flag, payload, start))
        start = end
    return flag, label, id_, id2, extra, payload[start:]


def _load(dir_):
    try:
        with open(os.path.join(dir_, "train.idx"), "r", encoding="ascii", newline="") as f:
            idx_text = f.read()
        with open(os.path.join(dir_, "train.rec"), "rb") as f:
            buf = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(str(e))
    return parse_idx(idx_text), buf


def read_all_payloads(dir_):
    entries, buf = _load(dir_)
    return [read_record_at(buf, off) for _, off in entries]


def read_dir(dir_):
    entries, buf = _load(dir_)
    records = []
    for key, off in entries:
        try:
            flag, label, id_, id2, extra, image = parse_payload(read_record_at(buf, off))
        except FormatError as e:
            raise FormatError("key %d: %s" % (key, e))
        payload_len = IRHEADER.size + 4 * len(extra) + len(image)
        records.append({
            "key": key, "offset": off, "flag": flag, "label": label,
            "extra_labels": extra, "id": id_, "id2": id2,
            "payload_len": payload_len,
            "payload_sha256": hashlib.sha256(image).hexdigest(),
        })
    prop_path = os.path.join(dir_, "property")
    prop = None
    if os.path.exists(prop_path):
        with open(prop_path, "r", encoding="utf-8", newline="") as f:
            prop = f.read()
    return {"records": records, "property": prop}


def main(argv):
    if len(argv) != 3 or argv[1] not in ("write", "read"):
        sys.stderr.write("usage: %s write|read DIR\n" % argv[0])
        return 2
    try:
        if argv[1] == "write":
            write_fixture(argv[2])
        else:
            out = read_dir(argv[2])
            try:
                text = json.dumps(out, indent=1, allow_nan=False)
            except ValueError:
                raise FormatError("non-finite label cannot be represented in JSON")
            sys.stdout.write(text + "\n")
    except FormatError as e:
        sys.stderr.write("error: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
