"""Decodes a TensorBoard event file that tests/tools/rt_tb_probe wrote and checks its content (see the probe's
comment). With TensorBoard installed, its own reader decodes the file; otherwise the decoder below, written
from the TFRecord framing and the protobuf wire format: it shares nothing with the runtime (its CRC-32C, its
varints and its field numbers are its own), so that a mistake in either shows.

usage: tensorboard_decode.py EVENT_FILE          checks the probe's file
       tensorboard_decode.py --dump EVENT_FILE   prints each event of any file as a line: "STEP TAG VALUE" for a
                                                 scalar, "STEP TAG histogram NUM MIN MAX" for a histogram (for
                                                 end-to-end tests of a produced executable's --tensorboard)"""
import math
import struct
import sys

# ---- TFRecord framing: u64 length, masked crc32c(length), data, masked crc32c(data)
CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
    CRC_TABLE.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ CRC_TABLE[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(blob):
    at = 0
    while at < len(blob):
        if len(blob) - at < 12:
            raise ValueError(f"record header cut at byte {at}")
        (n,) = struct.unpack_from("<Q", blob, at)
        (hcrc,) = struct.unpack_from("<I", blob, at + 8)
        if hcrc != masked(crc32c(blob[at:at + 8])):
            raise ValueError(f"bad length CRC at byte {at}")
        data = blob[at + 12:at + 12 + n]
        if len(data) != n or len(blob) < at + 16 + n:
            raise ValueError(f"record cut at byte {at}")
        (dcrc,) = struct.unpack_from("<I", blob, at + 12 + n)
        if dcrc != masked(crc32c(data)):
            raise ValueError(f"bad data CRC at byte {at}")
        yield data
        at += 16 + n


# ---- the protobuf wire format
def varint(buf, at):
    v = shift = 0
    while True:
        b = buf[at]
        at += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, at


def fields(buf):
    """(field number, wire type, value) of each field: ints, 8- and 4-byte values as bytes, nested bytes."""
    at = 0
    while at < len(buf):
        key, at = varint(buf, at)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, at = varint(buf, at)
        elif wt == 1:
            v, at = buf[at:at + 8], at + 8
        elif wt == 5:
            v, at = buf[at:at + 4], at + 4
        elif wt == 2:
            n, at = varint(buf, at)
            v, at = buf[at:at + n], at + n
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def f64(b):
    return struct.unpack("<d", b)[0]


def histogram(buf):
    h = {"min": 0.0, "max": 0.0, "num": 0.0, "sum": 0.0, "sum_squares": 0.0, "bucket_limit": [], "bucket": []}
    names = {1: "min", 2: "max", 3: "num", 4: "sum", 5: "sum_squares", 6: "bucket_limit", 7: "bucket"}
    for num, wt, v in fields(buf):
        if num not in names:
            continue
        if num >= 6:  # packed (wire type 2) or one at a time (1)
            h[names[num]] += list(struct.unpack(f"<{len(v) // 8}d", v)) if wt == 2 else [f64(v)]
        else:
            h[names[num]] = f64(v)
    return h


def event(buf):
    ev = {"wall_time": 0.0, "step": 0, "values": []}
    for num, wt, v in fields(buf):
        if num == 1:
            ev["wall_time"] = f64(v)
        elif num == 2:
            ev["step"] = v - (1 << 64) if v >= 1 << 63 else v
        elif num == 3:
            ev["file_version"] = v.decode()
        elif num == 5:
            for snum, _, sv in fields(v):
                if snum != 1:
                    continue
                val = {}
                for vnum, _, vv in fields(sv):
                    if vnum == 1:
                        val["tag"] = vv.decode()
                    elif vnum == 2:
                        val["simple_value"] = struct.unpack("<f", vv)[0]
                    elif vnum == 5:
                        val["histo"] = histogram(vv)
                ev["values"].append(val)
    return ev


def decode_own(path):
    with open(path, "rb") as f:
        return [event(r) for r in records(f.read())], "the Python decoder of tensorboard_decode.py"


def decode_tensorboard(path):
    from tensorboard.backend.event_processing import event_file_loader

    evs = []
    for e in event_file_loader.LegacyEventFileLoader(path).Load():
        ev = {"wall_time": e.wall_time, "step": e.step, "values": []}
        if e.HasField("file_version"):
            ev["file_version"] = e.file_version
        for v in e.summary.value:
            val = {"tag": v.tag}
            if v.HasField("simple_value"):
                val["simple_value"] = v.simple_value
            if v.HasField("histo"):
                h = v.histo
                val["histo"] = {"min": h.min, "max": h.max, "num": h.num, "sum": h.sum,
                                "sum_squares": h.sum_squares, "bucket_limit": list(h.bucket_limit),
                                "bucket": list(h.bucket)}
            ev["values"].append(val)
        evs.append(ev)
    return evs, "TensorBoard's reader"


def check(evs):
    assert evs[0].get("file_version") == "brain.Event:2", evs[0]
    assert evs[0]["wall_time"] > 1.5e9, evs[0]
    scalars, histos = {}, {}
    for ev in evs[1:]:
        assert len(ev["values"]) == 1, ev
        v = ev["values"][0]
        if "histo" in v:
            histos[(v["tag"], ev["step"])] = v["histo"]
        else:
            scalars[(v["tag"], ev["step"])] = v["simple_value"]
    want = {("lr", 1): 0.1, ("train/loss", 1): 0.75, ("train/accuracy", 1): 0.5, ("val/loss", 1): math.nan,
            ("train/loss", 2): 0.25}
    assert set(scalars) == set(want), f"scalars {sorted(scalars)}, expected {sorted(want)}"
    for k, w in want.items():
        got = scalars[k]
        ok = math.isnan(got) if math.isnan(w) else got == struct.unpack("<f", struct.pack("<f", w))[0]
        assert ok, f"{k}: {got}, expected {w}"
    assert set(histos) == {("fc.weight", 1)}, sorted(histos)
    h = histos[("fc.weight", 1)]
    values = [-2, -1, 0, 0.5, 0.5, 3]
    assert (h["num"], h["min"], h["max"], h["sum"], h["sum_squares"]) == (6, -2, 3, 1, 14.5), h
    limits, counts = h["bucket_limit"], h["bucket"]
    assert len(limits) == len(counts) and sum(counts) == 6, h
    assert all(a < b for a, b in zip(limits, limits[1:])), "bucket limits do not increase"
    for x in set(values):  # bucket i holds [limit[i - 1], limit[i])
        i = next(i for i, lim in enumerate(limits) if x < lim)
        assert counts[i] == values.count(x), f"{x} counted {counts[i]} times in the bucket ending {limits[i]}"
        if x > 0:
            assert abs(limits[i] / limits[i - 1] - 1.1) < 1e-9, "not TensorFlow's 10% buckets"


def dump(evs):
    for ev in evs:
        for v in ev["values"]:
            if "histo" in v:
                h = v["histo"]
                print(f"{ev['step']} {v['tag']} histogram {h['num']:g} {h['min']:.9g} {h['max']:.9g}")
            else:
                print(f"{ev['step']} {v['tag']} {v['simple_value']:.9g}")


def main():
    path = sys.argv[-1]
    try:
        import tensorboard  # noqa: F401
        evs, how = decode_tensorboard(path)
    except ImportError:
        evs, how = decode_own(path)
    if sys.argv[1] == "--dump":
        dump(evs)
        return
    check(evs)
    # the framing and the wire format are checked by the Python decoder whichever reader ran
    if how != "the Python decoder of tensorboard_decode.py":
        own, _ = decode_own(path)
        assert len(own) == len(evs), "the two decoders disagree"
    print(f"ok: {len(evs)} events decoded by {how}")


if __name__ == "__main__":
    main()
