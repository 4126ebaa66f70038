"""Blocklist index benchmark: build, size, memory, open and lookup time on real UT1 data plus
synthetic names up to 2,000,000, against a plain Python ``set`` of the same names.

    .venv/bin/python bench/blocklist_bench.py                # the index and the set reference
    .venv/bin/python bench/blocklist_bench.py --candidates   # + the structures not chosen

Every measured step runs in a fresh child process (this script with ``--child``), so each RSS
figure belongs to one structure and nothing else. Goals (issue 5, on a 2-core machine): build
≤ 60 s for 2 M names, ≤ 30 bytes a name on disk and in added RSS, open ≤ 0.2 s, lookup median
≤ 3 µs. Not part of ``make test``: about 30 s, a minute with ``--candidates``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import mmap
import os
import random
import re
import resource
import statistics
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blocklists.entries import EntryKind, ImportReport, ListEntry  # noqa: E402

UT1 = REPO.parent / "shared" / "data" / "ut1" / "blacklists.tar.gz"
QUERIES = 100_000  # 80 % misses with 3-5 labels, 20 % hits
BATCH = 10  # calls per timer reading: perf_counter_ns costs ~60 ns, a lookup ~1-2 µs
ROUNDS = 3  # passes over the (shuffled, uncached) queries: more samples for the p99

# --- the data -------------------------------------------------------------------------------

def ut1_entries(path: Path) -> Iterator[ListEntry]:
    """UT1 through the real importer when it is there, else a minimal reader of the tarball."""
    try:
        from blocklists.importers.ut1 import read_ut1
    except ImportError:
        yield from _minimal_ut1(path)
        return
    yield from read_ut1(path, report=ImportReport("ut1"))


_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


def _minimal_ut1(path: Path) -> Iterator[ListEntry]:
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or parts[-1] not in ("domains", "urls") or len(parts) < 2:
                continue  # symlinked aliases (violence → agressif) are read once, as the target
            category = parts[-2]
            stream = tar.extractfile(member)
            assert stream is not None
            for raw in stream:
                line = raw.decode("utf-8", "replace").strip().lower().rstrip(".")
                if not line or line.startswith("#"):
                    continue
                if parts[-1] == "urls":
                    host, _, rest = line.partition("/")
                    yield ListEntry(host, category, EntryKind.URL, "/" + rest)
                elif _IPV4.fullmatch(line):
                    yield ListEntry(line, category, EntryKind.IP)
                else:
                    yield ListEntry(line, category)


ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
          "sh", "ch", "zh", "kh", "y", "j"]
SYLLABLES = [o + v for o in ONSETS for v in "aeiou"]  # 100; every one ends in a vowel
TLDS = (["com"] * 35 + ["ru"] * 12 + ["net"] * 8 + ["org"] * 6 + ["kg"] * 5 + ["kz"] * 5
        + ["uz"] * 5 + ["info", "io", "de", "xyz", "top", "online", "site", "pl", "ua", "by",
                        "tk", "me", "co", "in", "br", "su", "biz"])
SUBS = ["www", "m", "mail", "shop", "blog", "cdn", "api", "app", "img", "static", "news",
        "forum", "en", "ru", "kz", "my"]
SLDS = ["com", "co", "org", "net", "edu", "gov"]


def _word(x: int) -> str:
    """A pronounceable label that is unique for each x (base-100 digits as syllables)."""
    out = []
    while True:
        x, digit = divmod(x, 100)
        out.append(SYLLABLES[digit])
        if not x:
            return "".join(reversed(out))


def synthetic_names(count: int, seed: int = 2026) -> Iterator[str]:
    """``count`` distinct names of realistic shapes: 2-4 labels, the TLDs of the region.

    Distinct by construction: the main label encodes a scrambled counter (an odd multiplier is
    a bijection mod 2**32), so consecutive names share no more than real ones do.
    """
    r = random.Random(seed)
    for i in range(count):
        label = _word(i * 2654435761 % 2**32)
        extra = r.random()
        if extra < 0.15:
            label += str(r.randrange(1000))
        elif extra < 0.23:
            label += "-" + r.choice(SYLLABLES)
        shape = r.random()
        if shape < 0.5:
            yield f"{label}.{r.choice(TLDS)}"
        elif shape < 0.85:
            sub = r.choice(SUBS) if r.random() < 0.6 else _word(r.getrandbits(24))
            yield f"{sub}.{label}.{r.choice(TLDS)}"
        else:
            yield f"{r.choice(SUBS)}.{label}.{r.choice(SLDS)}.{r.choice(('kg', 'kz', 'uz', 'ru'))}"


def all_entries(ut1: Path, synthetic: int) -> Iterator[tuple[str, Iterator[ListEntry]]]:
    cats = ("adult", "gambling", "malware")
    yield "ut1", ut1_entries(ut1)
    yield "synthetic", (ListEntry(name, cats[i % 3])
                        for i, name in enumerate(synthetic_names(synthetic)))


def miss_name(r: random.Random) -> str:
    labels = [r.choice(SUBS) if r.random() < 0.3 else _word(r.getrandbits(30))
              for _ in range(r.choice((3, 4, 5)) - 1)]
    return ".".join([*labels, r.choice(TLDS)])


# --- measuring ------------------------------------------------------------------------------

def memory() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) * 1024
    return out


def time_lookups(lookup: Callable[[str], Any], queries: list[str]) -> dict[str, float]:
    """Per-call ns: batches of BATCH calls, median and p99 over batches, ROUNDS passes."""
    per_call: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(ROUNDS):
        for start in range(0, len(queries), BATCH):
            batch = queries[start:start + BATCH]
            t0 = clock()
            for q in batch:
                lookup(q)
            per_call.append((clock() - t0) / len(batch))
    per_call.sort()
    return {"median_ns": statistics.median(per_call),
            "p99_ns": per_call[int(len(per_call) * 0.99)],
            "mean_ns": statistics.fmean(per_call)}


def child(argv: list[str]) -> dict[str, Any]:
    """Run one measured step in a fresh interpreter; it prints one JSON line."""
    run = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True,
                         text=True, cwd=REPO)
    if run.returncode:
        sys.stderr.write(run.stderr)
        raise SystemExit(f"child {argv[0]} failed")
    return json.loads(run.stdout.strip().splitlines()[-1])


# --- the steps (children) -------------------------------------------------------------------

def step_prepare(work: Path, ut1: Path, size: int) -> dict[str, Any]:
    """All names (for the set reference and the candidates) and the query mix, checked."""
    t0 = time.perf_counter()
    names: dict[str, bool] = {}  # name → a bare lookup can match it (not only URL entries)
    entries = 0
    for e in ut1_entries(ut1):
        names[e.domain] = names.get(e.domain, False) or e.kind is not EntryKind.URL
        entries += 1
    ut1_names = len(names)
    synthetic = max(0, size - ut1_names)
    for name in synthetic_names(synthetic):
        names[name] = True
    with open(work / "names.txt", "w") as out:
        out.writelines(n + "\n" for n in names)
    r = random.Random(7)
    listed = [name for name, matchable in names.items() if matchable]
    queries: list[list[Any]] = []
    while len(queries) < QUERIES:
        if len(queries) % 5 == 0:
            host = r.choice(listed)
            if r.random() < 0.5 and not _IPV4.fullmatch(host):
                host = f"{r.choice(SUBS)}.{host}"
            queries.append([host, True])
            continue
        host = miss_name(r)
        labels = host.split(".")
        if not any(".".join(labels[k:]) in names for k in range(len(labels))):
            queries.append([host, False])
    r.shuffle(queries)  # so that a timed batch holds any number of hits, as in real traffic
    with open(work / "queries.json", "w") as out:
        json.dump(queries, out)
    return {"ut1_entries": entries, "ut1_names": ut1_names, "synthetic": synthetic,
            "names": len(names), "seconds": round(time.perf_counter() - t0, 1)}


def step_set(work: Path) -> dict[str, Any]:
    """The reference: a plain set of the names, and a suffix walk over it per query."""
    queries = [q for q, _ in json.loads((work / "queries.json").read_text())]
    gc.collect()
    before = memory()
    names: set[str] = set()
    with open(work / "names.txt") as f:
        for line in f:
            names.add(line[:-1])
    gc.collect()
    after = memory()

    def walk(host: str) -> list[str]:  # what InMemoryCategoryIndex does, minus the payload
        found = []
        name = host
        while True:
            if name in names:
                found.append(name)
            dot = name.find(".")
            if dot < 0:
                return found
            name = name[dot + 1:]

    return {"names": len(names), "rss_added": after["VmRSS"] - before["VmRSS"],
            **time_lookups(walk, queries)}


def step_build(work: Path, ut1: Path, synthetic: int, variant: str) -> dict[str, Any]:
    import blocklists.index
    from blocklists.index import build_index

    if variant == "tries1":  # marisa's fastest (and biggest) layout, for the candidates table
        blocklists.index._TRIE_OPTIONS = {"num_tries": 1}
    t0 = time.perf_counter()
    stats = build_index(all_entries(ut1, synthetic), work / f"{variant}.kbi")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "domains": stats.domains, "entries": stats.entries,
            "file_size": stats.file_size, "per_kind": stats.per_kind,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def step_lookup(work: Path, variant: str, gate: bool) -> dict[str, Any]:
    from blocklists.index import open_index

    mix = json.loads((work / "queries.json").read_text())
    queries = [q for q, _ in mix]
    gc.collect()
    before = memory()
    t0 = time.perf_counter()
    index = open_index(work / f"{variant}.kbi")
    open_s = time.perf_counter() - t0
    after_open = memory()
    if not gate:  # the same code with every gate bit set: what the trie alone costs
        index._m.gate = b"\xff" * len(index._m.gate)  # type: ignore[union-attr]
    wrong = sum(bool(index.lookup(q)) != hit for q, hit in mix)
    timing = time_lookups(index.lookup, queries)
    after = memory()
    hits = [q for q, hit in mix if hit]
    misses = [q for q, hit in mix if not hit]
    return {"open_s": open_s, "wrong": wrong, **timing,
            "hit_median_ns": time_lookups(index.lookup, hits)["median_ns"],
            "miss_median_ns": time_lookups(index.lookup, misses)["median_ns"],
            "rss_open": after_open["VmRSS"] - before["VmRSS"],
            "rss_lookups": after["VmRSS"] - before["VmRSS"],
            "anon_lookups": after["RssAnon"] - before["RssAnon"],
            "file_lookups": after["RssFile"] - before["RssFile"]}


# --- candidates not chosen (``--candidates``): the same names, a 2-byte payload each ----------

def _h64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class Hash64:
    """Sorted 64-bit blake2b hashes of every name, a bucket directory, bisect per parent.
    Not exact: a false positive per probe has probability n / 2**64."""

    @staticmethod
    def build(names: list[str], path: Path) -> None:
        keys = sorted(_h64(n.encode()) for n in names)
        bits = max(1, (len(keys) // 2).bit_length())
        directory = array("I", bytes(4 * ((1 << bits) + 1)))
        shift = 64 - bits
        j = 0
        for b in range(1 << bits):
            directory[b] = j
            while j < len(keys) and keys[j] >> shift == b:
                j += 1
        directory[1 << bits] = len(keys)
        with open(path, "wb") as f:
            f.write(struct.pack("<QQ", len(keys), bits))
            f.write(directory.tobytes())
            f.write(array("Q", keys).tobytes())
            f.write(bytes(2 * len(keys)))  # the record-set ids

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self.mm = mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        n, bits = struct.unpack_from("<QQ", mm)
        view, offset = memoryview(mm), 16
        self.directory = view[offset:offset + 4 * ((1 << bits) + 1)].cast("I")
        offset += 4 * ((1 << bits) + 1)
        self.keys = view[offset:offset + 8 * n].cast("Q")
        self.ids = view[offset + 8 * n:offset + 10 * n].cast("H")
        self.shift = 64 - bits

    def lookup(self, host: str) -> list[tuple[bytes, int]]:
        found = []
        b = host.encode()
        pos = len(b)
        while pos > 0:
            pos = b.rfind(b".", 0, pos)
            name = b[pos + 1:]
            h = _h64(name)
            lo, hi = self.directory[h >> self.shift], self.directory[(h >> self.shift) + 1]
            i = bisect_left(self.keys, h, lo, hi)
            if i < hi and self.keys[i] == h:
                found.append((name, self.ids[i]))
        return found


class OwnExact:
    """Pure Python, exact: crc32 buckets, a string pool to verify hits, and every parent of a
    name stored as an 'interior' key so that a miss usually stops after one probe."""

    @staticmethod
    def build(names: list[str], path: Path) -> None:
        entries = set(names)
        interior = set()
        for n in names:
            labels = n.split(".")
            interior.update(".".join(labels[-k:]) for k in range(2, len(labels)))
        keys = sorted((zlib.crc32(k.encode()), k) for k in entries | interior)
        bits = max(1, (len(keys) // 4).bit_length())
        shift = 32 - bits
        directory = array("I", bytes(8 * ((1 << bits) + 1)))
        pool = bytearray()
        j = 0
        for b in range(1 << bits):
            directory[2 * b], directory[2 * b + 1] = j, len(pool)
            while j < len(keys) and keys[j][0] >> shift == b:
                k = keys[j][1]
                flag = 0x8000 if k in interior else 0
                data = k.encode() if k in entries else b""
                pool += bytes([len(data)]) + data + struct.pack("<H", flag)
                j += 1
        directory[2 << bits], directory[(2 << bits) + 1] = len(keys), len(pool)
        with open(path, "wb") as f:
            f.write(struct.pack("<QQ", len(keys), bits))
            f.write(directory.tobytes())
            f.write(array("I", (h for h, _ in keys)).tobytes())
            f.write(pool)

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self.mm = mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        n, bits = struct.unpack_from("<QQ", mm)
        view, offset = memoryview(mm), 16
        self.directory = view[offset:offset + 8 * ((1 << bits) + 1)].cast("I")
        offset += 8 * ((1 << bits) + 1)
        self.fps = view[offset:offset + 4 * n].cast("I")
        self.pool_offset = offset + 4 * n
        self.shift = 32 - bits

    def lookup(self, host: str) -> list[tuple[bytes, int]]:
        b = host.encode()
        found: list[tuple[bytes, int]] = []
        directory, fps, pool = self.directory, self.fps, self.mm
        pos = b.rfind(b".")
        while pos >= 0:
            pos = b.rfind(b".", 0, pos)
            name = b[pos + 1:]
            h = zlib.crc32(name)
            bucket = (h >> self.shift) * 2
            lo, hi = directory[bucket], directory[bucket + 2]
            i = bisect_left(fps, h, lo, hi)
            p, j, deeper = directory[bucket + 1] + self.pool_offset, lo, False
            while i < hi and fps[i] == h:
                while j < i:
                    p += 3 + pool[p]
                    j += 1
                length = pool[p]
                if length == 0 or pool[p + 1:p + 1 + length] == name:
                    value = pool[p + 1 + length] | pool[p + 2 + length] << 8
                    deeper = deeper or bool(value & 0x8000)
                    if length:
                        found.append((name, value & 0x7FFF))
                i += 1
            if not deeper:
                break
        return found


CANDIDATES = {"hash64": Hash64, "own-exact": OwnExact}


def step_candidate_build(work: Path, which: str) -> dict[str, Any]:
    names = (work / "names.txt").read_text().split()
    t0 = time.perf_counter()
    CANDIDATES[which].build(names, work / f"{which}.idx")
    return {"seconds": time.perf_counter() - t0,
            "file_size": os.path.getsize(work / f"{which}.idx")}


def step_candidate_lookup(work: Path, which: str) -> dict[str, Any]:
    mix = json.loads((work / "queries.json").read_text())
    queries = [q for q, _ in mix]
    gc.collect()
    before = memory()
    t0 = time.perf_counter()
    index = CANDIDATES[which](work / f"{which}.idx")
    open_s = time.perf_counter() - t0
    after_open = memory()
    wrong = sum(bool(index.lookup(q)) != hit for q, hit in mix)
    timing = time_lookups(index.lookup, queries)
    after = memory()
    return {"open_s": open_s, "wrong": wrong, **timing,
            "rss_open": after_open["VmRSS"] - before["VmRSS"],
            "rss_lookups": after["VmRSS"] - before["VmRSS"]}


# --- the report -----------------------------------------------------------------------------

def mb(n: float) -> str:
    return f"{n / 1e6:8.1f} MB"


def per(n: float, names: int) -> str:
    return f"{n / names:6.1f} B/name"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ut1", type=Path, default=UT1, help="UT1 tarball (default: shared)")
    parser.add_argument("--size", type=int, default=2_000_000, help="names in all (2,000,000)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kalkan-blocklist-bench"))
    parser.add_argument("--candidates", action="store_true",
                        help="also measure the structures that were not chosen")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work: Path = args.work
    if args.child:
        step, *rest = args.child
        result: dict[str, Any] = {
            "prepare": lambda: step_prepare(work, args.ut1, args.size),
            "set": lambda: step_set(work),
            "build": lambda: step_build(work, args.ut1, int(rest[0]), rest[1]),
            "lookup": lambda: step_lookup(work, rest[0], gate=rest[1] == "gate"),
            "cbuild": lambda: step_candidate_build(work, rest[0]),
            "clookup": lambda: step_candidate_lookup(work, rest[0]),
        }[step]()
        print(json.dumps(result))
        return 0

    if not args.ut1.exists():
        print(f"no UT1 tarball at {args.ut1}: pass --ut1", file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    common = ["--work", str(work), "--ut1", str(args.ut1), "--size", str(args.size)]
    started = time.perf_counter()
    print(f"kalkan blocklist index benchmark — {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, work files in {work}")
    prep = child(["prepare", *common])
    print(f"data: UT1 {prep['ut1_entries']:,} entries / {prep['ut1_names']:,} names "
          f"+ {prep['synthetic']:,} synthetic = {prep['names']:,} names "
          f"(prepared in {prep['seconds']} s)")
    build = child(["build", str(prep["synthetic"]), "index", *common])
    look = child(["lookup", "index", "gate", *common])
    bare = child(["lookup", "index", "no-gate", *common])
    ref = child(["set", *common])
    n = build["domains"]

    rows = [
        ("names in the index", f"{n:,}", f"entries {build['entries']:,} "
         f"({', '.join(f'{k} {v:,}' for k, v in build['per_kind'].items())})", ""),
        ("build", f"{build['seconds']:8.1f} s", f"peak RSS {mb(build['peak_rss']).strip()}",
         verdict(build["seconds"] <= 60)),
        ("file size", mb(build["file_size"]), per(build["file_size"], n),
         verdict(build["file_size"] / n <= 30)),
        ("open (checksum included)", f"{look['open_s'] * 1000:8.1f} ms", "",
         verdict(look["open_s"] <= 0.2)),
        ("RSS added after open", mb(look["rss_open"]), per(look["rss_open"], n), ""),
        ("RSS added after lookups", mb(look["rss_lookups"]), per(look["rss_lookups"], n)
         + f" (anon {mb(look['anon_lookups']).strip()}, file {mb(look['file_lookups']).strip()})",
         verdict(look["rss_lookups"] / n <= 30)),
        ("lookup median / p99", f"{look['median_ns'] / 1000:8.2f} µs",
         f"p99 {look['p99_ns'] / 1000:.2f} µs, mean {look['mean_ns'] / 1000:.2f} µs",
         verdict(look["median_ns"] <= 3000)),
        ("  misses / hits median", f"{look['miss_median_ns'] / 1000:8.2f} µs",
         f"hits {look['hit_median_ns'] / 1000:.2f} µs", ""),
        ("  without the gate", f"{bare['median_ns'] / 1000:8.2f} µs",
         f"p99 {bare['p99_ns'] / 1000:.2f} µs; misses {bare['miss_median_ns'] / 1000:.2f}, "
         f"hits {bare['hit_median_ns'] / 1000:.2f}", ""),
        ("wrong answers (vs the set)", f"{look['wrong']:8d}", "", verdict(look["wrong"] == 0)),
        ("reference: Python set", mb(ref["rss_added"]), per(ref["rss_added"], ref["names"])
         + f", suffix walk median {ref['median_ns'] / 1000:.2f} µs", ""),
        ("ratio index / set", f"{look['rss_lookups'] / ref['rss_added']:8.2f} RSS",
         f"{build['file_size'] / ref['rss_added']:.2f} file, "
         f"{look['median_ns'] / ref['median_ns']:.2f} lookup time", ""),
    ]
    print()
    print(f"{'':30} {'value':>12}  {'detail':<62} goal")
    for label, value, detail, goal in rows:
        print(f"{label:30} {value:>12}  {detail:<62} {goal}")

    if args.candidates:
        print("\ncandidates (same names; payload: a 2-byte set id per name)")
        print(f"{'structure':22} {'build s':>8} {'B/name file':>12} {'B/name RSS':>11} "
              f"{'open ms':>8} {'median µs':>10} {'p99 µs':>8} {'wrong':>6}")

        def line(name: str, b: dict[str, Any], lk: dict[str, Any]) -> None:
            print(f"{name:22} {b['seconds']:8.1f} {b['file_size'] / n:12.1f} "
                  f"{lk['rss_lookups'] / n:11.1f} {lk['open_s'] * 1000:8.1f} "
                  f"{lk['median_ns'] / 1000:10.2f} {lk['p99_ns'] / 1000:8.2f} {lk['wrong']:6d}")

        line("marisa-trie + gate", build, look)
        line("marisa-trie alone", build, bare)
        line("marisa, 1 trie + gate", child(["build", str(prep["synthetic"]), "tries1", *common]),
             child(["lookup", "tries1", "gate", *common]))
        for which in CANDIDATES:
            line(which, child(["cbuild", which, *common]), child(["clookup", which, *common]))
        print(f"{'python set':22} {'':>8} {'':>12} {ref['rss_added'] / n:11.1f} {'':>8} "
              f"{ref['median_ns'] / 1000:10.2f} {ref['p99_ns'] / 1000:8.2f}")
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
