#!/usr/bin/python3
"""Compare the outputs of two ncsparse builds, case by case (issue 15, "What must not change").

Usage: benchmarks/compare_results.py [--strict] [--rel-tol R] [--abs-floor A] [--exclude NAME]...
                                     [--exclude-line REGEX]... [--text-last-digit]
                                     [--by file|group|kind] [--verbose] BEFORE_DIR AFTER_DIR

BEFORE_DIR and AFTER_DIR hold one sub-directory per case (as benchmarks/compare_builds.sh writes
them); the files of a case are matched by relative path and compared by kind:

  *.h5      every dataset and attribute, recursively (names, shapes, dtypes, values)
  *.json    every key, recursively (lists of objects keyed by their "strategy"/"eps" field)
  *.csv     header and every cell, by column name and row number
  *.txt     (tables printed by table/markdown formats, `fit`, exit codes) token by token
  *.err     stderr, compared like *.txt but never a failure ("info")
  *.log     ignored (progress lines with timings)

Rules:
  - integer data (integer dtypes, JSON integers, and the float-stored names in INTEGER_NAMES)
    and strings must be identical;
  - floating-point values: bit-identical counted; the rest must have
        |a - b| / max(|a|, |b|, ABS_FLOOR) <= REL_TOL          (defaults 1e-6 and 1e-12);
    NaN equals NaN, an infinity equals the same infinity; JSON null equals only null;
  - numbers printed in text (tables, `fit`) must print the same, or differ by at most REL_TOL
    relative; with --text-last-digit a difference of one unit in the last printed digit passes
    too (a value within REL_TOL that rounds the other way; check it in the HDF5/JSON rows);
  - a name (file, dataset, attribute, key, column) present BEFORE and absent AFTER is a failure
    ("missing"); one present only AFTER is reported as "added", a failure only with --strict;
  - a changed shape or dtype (e.g. float32 -> float64, int64 -> float64) is a failure.
Names in EXCLUDED_NAMES (timings, versions, hosts, pids, run-dependent checksums) are skipped wherever they
occur as a dataset, attribute, JSON key or CSV column name; text lines matching
EXCLUDED_LINE_PATTERNS are skipped. Add the refactor's new timing names there.

Prints one table row per (case, file, field group) (--by: per file, or per group and kind):
values compared, bit-identical, max relative difference of the rest, verdict; then the differing
fields. Exit status: 0 all agree, 1 any failure, 2 usage error.
Self-test: /usr/bin/python3 benchmarks/test_compare_results.py
"""
import argparse
import csv
import json
import math
import os
import re
import struct
import sys

# ---- names skipped everywhere (timings and run-specific metadata) ---------------------------
EXCLUDED_NAMES = {
    # timings: `run --format json` "seconds" {inputs, local_pass, merge, sparse, approx, stats,
    # output, total}; study records "times" (7 phase times) and "times_fields" (their names,
    # which the refactor changes by adding the approximators' time)
    "seconds", "times", "times_fields", "wall_time", "wall_seconds", "elapsed", "elapsed_s",
    "compute_seconds", "commit_seconds", "checkpoint_seconds",
    # versions, dates, hosts, command lines, processes
    "ncsparse_version", "version", "date", "created", "timestamp", "hostname", "host",
    "command_line", "command", "argv", "pid",
    # study: the lock file of OUT.records/ ("pid N on HOST"); a record's "checksum" attribute
    # covers its "times" too (src/study/records.cpp), so it differs from run to run
    "lock", "checksum",
}
# float-stored values that are counts / window lengths / configuration integers: must be identical
INTEGER_NAMES = {
    "k_min", "k_max", "count", "rows", "clamped_rows", "lost_rows", "unconverged_rows",
    "uncovered_rows", "features", "state_bytes", "n", "d", "seed", "index", "queries",
    "list_length", "max_k", "block", "tile", "ranks", "threads", "configurations", "recorded",
    "complete", "heads", "kv_heads", "query_rows", "strategy_index", "clamped",
}
# text lines skipped (printed timings)
EXCLUDED_LINE_PATTERNS = [
    r"wall time",             # run/attend table: "wall time (s, max over ranks): ..."
    r"\belapsed\b", r"\bETA\b", r"seconds", r"\d s\b",
    r"^pid \d+",              # lock file
]
HEX_HASH = re.compile(r"^[0-9a-f]{16}$")   # study config hashes: collapsed in group names


class Stat:
    """Counts for one table row."""
    def __init__(self):
        self.count = 0
        self.bitident = 0
        self.max_rel = 0.0
        self.max_abs = 0.0
        self.fail = False
        self.info_only = False
        self.notes = []          # (path, message)
        self.added = 0
        self.missing = 0


class Comparator:
    def __init__(self, args):
        self.rel_tol = args.rel_tol
        self.abs_floor = args.abs_floor
        self.strict = args.strict
        self.text_last_digit = args.text_last_digit
        self.excluded = set(EXCLUDED_NAMES) | set(args.exclude or [])
        self.line_re = [re.compile(p) for p in EXCLUDED_LINE_PATTERNS + (args.exclude_line or [])]
        # OLD -> [NEW, ...]: BEFORE's HDF5 dataset OLD (..., k) became AFTER's k datasets NEW_i
        self.splits = {}
        for spec in args.split or []:
            old, _, new = spec.partition("=")
            self.splits[old] = new.split(",")
        self.rows = {}           # (case, file, group, kind) -> Stat
        self.excluded_seen = set()

    # ---- bookkeeping ----------------------------------------------------------------------
    def stat(self, case, fname, group, kind):
        key = (case, fname, group, kind)
        if key not in self.rows:
            self.rows[key] = Stat()
        return self.rows[key]

    def is_excluded(self, name):
        if name in self.excluded:
            self.excluded_seen.add(name)
            return True
        return False

    def presence(self, st, path, in_before, in_after):
        """Returns True when both sides have it; records missing/added otherwise."""
        if in_before and in_after:
            return True
        if in_before:
            st.missing += 1
            st.fail = True
            st.notes.append((path, "missing after"))
        else:
            st.added += 1
            if self.strict:
                st.fail = True
            st.notes.append((path, "added after" + (" (--strict: failure)" if self.strict else "")))
        return False

    # ---- scalar comparisons -----------------------------------------------------------------
    def cmp_float(self, st, path, a, b, bits_a=None, bits_b=None):
        st.count += 1
        if a is None or b is None:
            if a is None and b is None:
                st.bitident += 1
            else:
                st.fail = True
                st.notes.append((path, f"{a!r} -> {b!r}"))
            return
        a = float(a)
        b = float(b)
        if bits_a is None:
            bits_a, bits_b = struct.pack("<d", a), struct.pack("<d", b)
        if bits_a == bits_b:
            st.bitident += 1
            return
        if math.isnan(a) and math.isnan(b):
            return
        if a == b:               # +0 / -0
            return
        if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
            rel = math.inf
            diff = math.inf
        else:
            diff = abs(a - b)
            rel = diff / max(abs(a), abs(b), self.abs_floor)
        st.max_rel = max(st.max_rel, rel)
        st.max_abs = max(st.max_abs, diff)
        if rel > self.rel_tol:
            st.fail = True
            st.notes.append((path, f"{a!r} -> {b!r} (rel {rel:.3g})"))

    def cmp_exact(self, st, path, a, b):
        st.count += 1
        if a == b and type(a) is type(b):
            st.bitident += 1
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
                not isinstance(a, bool) and not isinstance(b, bool) and a == b:
            st.bitident += 1     # 256 vs 256.0: the same number
        else:
            st.fail = True
            st.notes.append((path, f"{a!r} -> {b!r}"))

    def cmp_value(self, st_for, path, name, a, b):
        """Python scalars (JSON, CSV, HDF5 attributes)."""
        def num(x):
            return isinstance(x, (int, float)) and not isinstance(x, bool)
        if num(a) and num(b) and (isinstance(a, float) or isinstance(b, float)) \
                and name not in INTEGER_NAMES:
            self.cmp_float(st_for("float"), path, a, b)
        elif (a is None and (b is None or num(b))) or (b is None and num(a)):   # JSON null
            self.cmp_float(st_for("float"), path, a, b)
        elif num(a) or num(b):
            self.cmp_exact(st_for("int"), path, a, b)
        else:
            self.cmp_exact(st_for("str"), path, a, b)

    # ---- HDF5 -------------------------------------------------------------------------------
    def compare_h5(self, case, fname, pa, pb):
        import h5py
        import numpy as np
        fa, fb = h5py.File(pa, "r"), h5py.File(pb, "r")

        def group_of(path):
            parts = [p for p in path.split("/") if p]
            if not parts:
                return "/ (root)"
            first = "*" if HEX_HASH.match(parts[0]) else parts[0]
            return first

        def st_for(path, kind):
            return self.stat(case, fname, group_of(path), kind)

        def attrs(path, oa, ob):
            ka, kb = set(oa.attrs.keys()), set(ob.attrs.keys())
            for name in sorted(ka | kb):
                if self.is_excluded(name):
                    continue
                p = f"{path}@{name}"
                if not self.presence(st_for(path, "attr"), p, name in ka, name in kb):
                    continue
                va, vb = oa.attrs[name], ob.attrs[name]
                aa, ab = np.asarray(va), np.asarray(vb)
                if aa.shape != ab.shape or aa.dtype.kind != ab.dtype.kind:
                    s = st_for(path, "attr")
                    s.count += 1
                    s.fail = True
                    s.notes.append((p, f"{aa.dtype}{aa.shape} -> {ab.dtype}{ab.shape}"))
                    continue
                for x, y in zip(aa.reshape(-1).tolist(), ab.reshape(-1).tolist()):
                    if isinstance(x, bytes):
                        x, y = x.decode("utf-8", "replace"), y.decode("utf-8", "replace")
                    self.cmp_value(lambda k: st_for(path, "attr " + k), p, name, x, y)

        def dataset(path, da, db):
            name = path.rsplit("/", 1)[-1]
            a, b = da[()], db[()]
            a, b = np.asarray(a), np.asarray(b)
            kind = {"f": "float", "i": "int", "u": "int", "b": "int"}.get(a.dtype.kind, "str")
            if kind == "float" and name in INTEGER_NAMES:
                kind = "int"
            s = st_for(path, kind)
            if a.shape != b.shape or a.dtype != b.dtype:
                s.count += a.size
                s.fail = True
                s.notes.append((path, f"{a.dtype}{a.shape} -> {b.dtype}{b.shape}"))
                return
            if kind == "float" and a.size:
                bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
                ia = a.reshape(-1).view(bits)
                ib = b.reshape(-1).view(bits)
                same = ia == ib
                s.count += a.size
                s.bitident += int(same.sum())
                if same.all():
                    return
                x = a.reshape(-1)[~same].astype(np.float64)
                y = b.reshape(-1)[~same].astype(np.float64)
                both_nan = np.isnan(x) & np.isnan(y)
                eq = (x == y) | both_nan
                x, y = x[~eq], y[~eq]
                if x.size == 0:
                    return
                with np.errstate(invalid="ignore", over="ignore"):
                    diff = np.abs(x - y)
                    den = np.maximum(np.maximum(np.abs(x), np.abs(y)), self.abs_floor)
                    rel = diff / den
                rel = np.where(np.isnan(rel), np.inf, rel)
                diff = np.where(np.isnan(diff), np.inf, diff)
                s.max_rel = max(s.max_rel, float(rel.max()))
                s.max_abs = max(s.max_abs, float(diff.max()))
                if rel.max() > self.rel_tol:
                    s.fail = True
                    i = int(rel.argmax())
                    s.notes.append((path, f"{int((rel > self.rel_tol).sum())} of {a.size} values "
                                          f"beyond {self.rel_tol:g}; worst {x[i]!r} -> {y[i]!r} "
                                          f"(rel {rel[i]:.3g})"))
            elif kind == "int" and a.dtype.kind == "f":
                s.count += a.size
                ok = (a == b) | (np.isnan(a) & np.isnan(b))
                s.bitident += int(ok.sum())
                if not ok.all():
                    s.fail = True
                    s.notes.append((path, f"{int((~ok).sum())} of {a.size} differ (integer field)"))
            else:
                s.count += a.size
                ok = a == b
                ok = np.asarray(ok)
                s.bitident += int(ok.sum())
                if not ok.all():
                    s.fail = True
                    idx = np.argwhere(~ok)[0]
                    s.notes.append((path, f"{int((~ok).sum())} of {a.size} differ; first at "
                                          f"{tuple(int(i) for i in idx)}: "
                                          f"{a[tuple(idx)]!r} -> {b[tuple(idx)]!r}"))

        def walk(path, ga, gb):
            attrs(path or "/", ga, gb)
            ka, kb = set(ga.keys()), set(gb.keys())
            for name in sorted(ka | kb):
                if self.is_excluded(name):
                    continue
                p = f"{path}/{name}"
                oa, ob = ga.get(name), gb.get(name)
                new = self.splits.get(name, [])
                if new and oa is not None and ob is None and all(x in gb for x in new):
                    column = np.asarray(oa[()])  # its last axis: one column per NEW dataset
                    for i, x in enumerate(new):
                        dataset(f"{path}/{x}", column[..., i], gb[x])
                    continue
                if not self.presence(st_for(p, "object"), p, oa is not None, ob is not None):
                    continue
                if isinstance(oa, h5py.Group) and isinstance(ob, h5py.Group):
                    walk(p, oa, ob)
                elif isinstance(oa, h5py.Dataset) and isinstance(ob, h5py.Dataset):
                    attrs(p, oa, ob)
                    dataset(p, oa, ob)
                else:
                    s = st_for(p, "object")
                    s.fail = True
                    s.notes.append((p, f"{type(oa).__name__} -> {type(ob).__name__}"))
        walk("", fa, fb)

    # ---- JSON -------------------------------------------------------------------------------
    def compare_json(self, case, fname, pa, pb):
        with open(pa) as f:
            a = json.load(f)
        with open(pb) as f:
            b = json.load(f)

        def key_list(lst):
            """Lists of objects with a unique identifying field are matched by it."""
            for field in ("strategy", "eps", "head", "spec", "name"):
                if lst and all(isinstance(x, dict) and field in x for x in lst):
                    ids = [f"{field}={x[field]}" for x in lst]
                    if len(set(ids)) == len(ids):
                        return ids
            return [str(i) for i in range(len(lst))]

        def walk(path, group, x, y, lastname):
            def st_for(kind):
                return self.stat(case, fname, group, kind)
            if isinstance(x, dict) and isinstance(y, dict):
                for k in list(x.keys()) + [k for k in y.keys() if k not in x]:
                    if self.is_excluded(k):
                        continue
                    p = f"{path}.{k}" if path else k
                    g = group or k
                    if not self.presence(self.stat(case, fname, g, "key"), p, k in x, k in y):
                        continue
                    # "k": {"min": ..} is the field k_min
                    sub = f"{lastname}_{k}" if lastname and not isinstance(x[k], (dict, list)) else k
                    walk(p, g, x[k], y[k], sub)
            elif isinstance(x, list) and isinstance(y, list):
                ia, ib = key_list(x), key_list(y)
                da, db = dict(zip(ia, x)), dict(zip(ib, y))
                common_a = [i for i in ia if i in db]
                common_b = [i for i in ib if i in da]
                if common_a != common_b:
                    s = st_for("order")
                    s.fail = True
                    s.notes.append((path, f"order {common_a} -> {common_b}"))
                for i in ia + [i for i in ib if i not in da]:
                    p = f"{path}[{i}]"
                    g = group or "(top list)"
                    if not self.presence(self.stat(case, fname, g, "key"), p, i in da, i in db):
                        continue
                    walk(p, group, da[i], db[i], lastname)
            elif isinstance(x, (dict, list)) or isinstance(y, (dict, list)):
                s = st_for("key")
                s.fail = True
                s.notes.append((path, f"{type(x).__name__} -> {type(y).__name__}"))
            else:
                self.cmp_value(st_for, path, lastname, x, y)
        walk("", "", a, b, "")

    # ---- CSV --------------------------------------------------------------------------------
    def compare_csv(self, case, fname, pa, pb):
        def load(p):
            with open(p, newline="") as f:
                return list(csv.reader(f))
        ra, rb = load(pa), load(pb)
        if not ra or not rb:
            self.compare_text(case, fname, pa, pb)
            return
        ha, hb = ra[0], rb[0]
        ka = ha[0]

        def parse(s):
            try:
                return int(s)
            except ValueError:
                pass
            try:
                return float(s)
            except ValueError:
                return s
        st_key = self.stat(case, fname, "columns", "key")
        for col in ha + [c for c in hb if c not in ha]:
            if self.is_excluded(col):
                continue
            self.presence(st_key, col, col in ha, col in hb)
        if len(ra) != len(rb):
            st_key.fail = True
            st_key.notes.append(("rows", f"{len(ra) - 1} -> {len(rb) - 1} data rows"))
        for r in range(1, min(len(ra), len(rb))):
            label = ra[r][0] if ra[r] else str(r)
            for j, col in enumerate(ha):
                if self.is_excluded(col) or col not in hb:
                    continue
                jb = hb.index(col)
                if j >= len(ra[r]) or jb >= len(rb[r]):
                    continue
                x, y = parse(ra[r][j]), parse(rb[r][jb])
                self.cmp_value(lambda k: self.stat(case, fname, "rows", k),
                               f"row {r} ({ka}={label}) {col}", col, x, y)

    # ---- text -------------------------------------------------------------------------------
    NUM = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def compare_text(self, case, fname, pa, pb, info_only=False):
        def load(p):
            with open(p, errors="replace") as f:
                return [ln.rstrip("\n") for ln in f
                        if not any(r.search(ln) for r in self.line_re)]
        la, lb = load(pa), load(pb)
        s = self.stat(case, fname, "lines", "text")
        s.info_only = info_only
        if len(la) != len(lb):
            s.fail = True
            s.notes.append(("lines", f"{len(la)} -> {len(lb)} lines"))
        for i, (x, y) in enumerate(zip(la, lb)):
            if x == y:
                tokens = len(x.split()) or 1
                s.count += tokens
                s.bitident += tokens
                continue
            tx, ty = re.split(r"[\s|,]+", x.strip()), re.split(r"[\s|,]+", y.strip())
            if len(tx) != len(ty):
                s.count += 1
                s.fail = True
                s.notes.append((f"line {i + 1}", f"{x.strip()!r} -> {y.strip()!r}"))
                continue
            for u, v in zip(tx, ty):
                s.count += 1
                if u == v:
                    s.bitident += 1
                    continue
                if self.NUM.match(u) and self.NUM.match(v):
                    a, b = float(u), float(v)
                    mant = u.lower().split("e")[0]
                    dec = len(mant.split(".")[1]) if "." in mant else 0
                    exp = int(u.lower().split("e")[1]) if "e" in u.lower() else 0
                    ulp = 10.0 ** (exp - dec)             # one unit in the last printed place
                    diff = abs(a - b)
                    rel = diff / max(abs(a), abs(b), self.abs_floor)
                    s.max_rel = max(s.max_rel, rel)
                    s.max_abs = max(s.max_abs, diff)
                    if rel <= self.rel_tol or (self.text_last_digit and diff <= ulp * (1 + 1e-9)):
                        continue
                s.fail = True
                s.notes.append((f"line {i + 1}", f"{u!r} -> {v!r} in {x.strip()!r}"))

    # ---- files ------------------------------------------------------------------------------
    def compare_case(self, case, da, db):
        def files(root):
            out = set()
            for dp, _, fns in os.walk(root):
                for fn in fns:
                    out.add(os.path.relpath(os.path.join(dp, fn), root))
            return out
        fa, fb = files(da), files(db)
        for rel in sorted(fa | fb):
            base = os.path.basename(rel)
            if base.endswith(".log") or ".tmp" in base or self.is_excluded(base):
                continue
            label = "/".join("*" + os.path.splitext(p)[1] if HEX_HASH.match(os.path.splitext(p)[0])
                             else p for p in rel.split(os.sep))
            if not self.presence(self.stat(case, label, "(file)", "file"), rel,
                                 rel in fa, rel in fb):
                continue
            pa, pb = os.path.join(da, rel), os.path.join(db, rel)
            try:
                if base.endswith(".h5"):
                    self.compare_h5(case, label, pa, pb)
                elif base.endswith(".json"):
                    self.compare_json(case, label, pa, pb)
                elif base.endswith(".csv"):
                    self.compare_csv(case, label, pa, pb)
                else:
                    self.compare_text(case, label, pa, pb, info_only=base.endswith(".err"))
            except Exception as e:      # unreadable file on one side: a failure, not a crash
                s = self.stat(case, label, "(file)", "file")
                s.fail = True
                s.notes.append((rel, f"cannot compare: {type(e).__name__}: {e}"))

    # ---- report -----------------------------------------------------------------------------
    def merged(self, by):
        """Table rows at the level `by`: kind (case, file, group, kind), group (case, file,
        group), file (case, file); kinds merged into one row list what they held."""
        out = {}
        for key, s in self.rows.items():
            if s.count == 0 and not s.notes:
                continue
            k = {"kind": key, "group": key[:3], "file": key[:2]}[by]
            if k not in out:
                out[k] = (Stat(), set())
                out[k][0].info_only = True
            m, kinds = out[k]
            kinds.add(key[3] if by == "kind" else key[3].split()[-1])
            m.count += s.count
            m.bitident += s.bitident
            m.max_rel = max(m.max_rel, s.max_rel)
            m.missing += s.missing
            m.added += s.added
            if s.fail and not s.info_only:
                m.fail = True
                m.info_only = False
            elif s.fail:
                m.fail = True
            if not s.info_only:
                m.info_only = False
        rows = []
        for k in sorted(out):
            m, kinds = out[k]
            label = k + ("(all)",) * (3 - len(k)) if len(k) < 3 else k[:3]
            rows.append((label, "+".join(sorted(kinds)), m))
        return rows

    def report(self, verbose, max_notes, by="group"):
        hdr = ("case", "file", "group", "kind", "count", "bit-identical", "max rel diff", "verdict")
        lines = []
        failed = False
        for label, kinds, s in self.merged(by):
            key = (*label, kinds)
            if s.fail and not s.info_only:
                verdict = "FAIL"
                failed = True
            elif s.fail:
                verdict = "differs (info)"
            elif s.count == s.bitident:
                verdict = "identical"
            else:
                verdict = "within tol"
            extra = []
            if s.missing:
                extra.append(f"{s.missing} missing")
            if s.added:
                extra.append(f"{s.added} added")
            if extra:
                verdict += " (" + ", ".join(extra) + ")"
            rel = "-" if s.count == s.bitident or s.max_rel == 0 else f"{s.max_rel:.3g}"
            lines.append((*key, str(s.count), str(s.bitident), rel, verdict))
        widths = [max(len(r[i]) for r in [hdr] + lines) for i in range(len(hdr))]
        right = {4, 5, 6}

        def fmt(r):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        print(f"tolerance: floats bit-identical or |a-b|/max(|a|,|b|,{self.abs_floor:g}) <= "
              f"{self.rel_tol:g}; integers, strings identical; numbers in text as printed"
              + (" or within one unit of the last printed digit" if self.text_last_digit else ""))
        print(f"excluded names: {', '.join(sorted(self.excluded))}")
        print(f"excluded text lines: {', '.join(p.pattern for p in self.line_re)}")
        print(fmt(hdr))
        print(fmt(tuple("-" * w for w in widths)))
        for r in lines:
            print(fmt(r))
        failed = failed or any(s.fail and not s.info_only for s in self.rows.values())
        shown = 0
        for key in sorted(self.rows):
            s = self.rows[key]
            if not s.notes or (not verbose and not s.fail and not s.added):
                continue
            for path, msg in s.notes[:max_notes]:
                if shown == 0:
                    print("\ndifferences:")
                print(f"  {key[0]} {key[1]} {path}: {msg}")
                shown += 1
            if len(s.notes) > max_notes:
                print(f"  {key[0]} {key[1]} ... {len(s.notes) - max_notes} more in {key[2]}/{key[3]}")
        excl = sorted(self.excluded_seen)
        print(f"\nexcluded names met: {', '.join(excl) if excl else 'none'}")
        total = sum(s.count for s in self.rows.values() if not s.info_only)
        ident = sum(s.bitident for s in self.rows.values() if not s.info_only)
        print(f"{'FAIL' if failed else 'OK'}: {total} values compared, {ident} bit-identical")
        return failed


def main():
    ap = argparse.ArgumentParser(
        description="Compare two ncsparse output trees (one sub-directory per case): HDF5, JSON, "
                    "CSV and text; exit 1 when any value differs beyond the tolerance or a name "
                    "is missing.",
        epilog="Excluded names and the rules are listed at the top of this script.")
    ap.add_argument("before", help="directory of the BEFORE build's outputs")
    ap.add_argument("after", help="directory of the AFTER build's outputs")
    ap.add_argument("--strict", action="store_true", help="names added AFTER are failures too")
    ap.add_argument("--rel-tol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    ap.add_argument("--abs-floor", type=float, default=1e-12,
                    help="denominator floor for values near 0 (1e-12)")
    ap.add_argument("--exclude", action="append", metavar="NAME",
                    help="one more name to skip (repeatable)")
    ap.add_argument("--exclude-line", action="append", metavar="REGEX",
                    help="one more text-line pattern to skip (repeatable)")
    ap.add_argument("--text-last-digit", action="store_true",
                    help="numbers in text files may differ by one unit in their last printed digit")
    ap.add_argument("--split", action="append", metavar="OLD=NEW1,NEW2,...",
                    help="BEFORE's HDF5 dataset OLD (last axis k) is AFTER's datasets NEW1..NEWk: compare "
                         "column i with NEWi instead of reporting OLD missing")
    ap.add_argument("--verbose", action="store_true", help="list within-tolerance differences too")
    ap.add_argument("--by", choices=("file", "group", "kind"), default="group",
                    help="table rows per file, per field group of a file (default), or per group "
                         "and kind (int, float, str, attr ...)")
    ap.add_argument("--max-notes", type=int, default=5, help="differences listed per row (5)")
    args = ap.parse_args()
    for d in (args.before, args.after):
        if not os.path.isdir(d):
            print(f"compare_results: {d}: not a directory", file=sys.stderr)
            return 2
    cmp = Comparator(args)
    cases_a = {e for e in os.listdir(args.before) if os.path.isdir(os.path.join(args.before, e))}
    cases_b = {e for e in os.listdir(args.after) if os.path.isdir(os.path.join(args.after, e))}
    if not cases_a and not cases_b:       # a single case: the two directories themselves
        cmp.compare_case(".", args.before, args.after)
    for case in sorted(cases_a | cases_b):
        if cmp.presence(cmp.stat(case, "(case)", "(dir)", "dir"), case,
                        case in cases_a, case in cases_b):
            cmp.compare_case(case, os.path.join(args.before, case), os.path.join(args.after, case))
    return 1 if cmp.report(args.verbose, args.max_notes, args.by) else 0


if __name__ == "__main__":
    sys.exit(main())
