# libfdt_lookup.py: libfdt's read-only lookups on each blob of stdin (one
# hex blob a line), the ones the Linux 7.2 kernel makes of a KHO root FDT;
# one line of results a blob, in the format of lookup_test.go's goLookups.
import os
import sys

import libfdt


def prop(b, node, name):
    r = libfdt.fdt_getprop(b, node, name)
    if isinstance(r, int):
        return "err%d" % r
    return bytes(r[0]).hex()


for line in sys.stdin:
    b = bytearray.fromhex(line.strip())
    out = ["hdr=%d" % libfdt.fdt_check_header(b)]
    if out[0] == "hdr=0":
        out.append("compat=%d" % libfdt.fdt_node_check_compatible(b, 0, "kho-v4"))
        out.append("map=" + prop(b, 0, "preserved-memory-map"))
        for name in ("LUO", "kexec-metadata", "kho-sim"):
            off = libfdt.fdt_subnode_offset(b, 0, name)
            if off < 0:
                out.append("%s=err%d" % (name, off))
                continue
            out.append("%s=%d" % (name, off))
            for p in ("preserved-data", "blob-size"):
                out.append("%s.%s=%s" % (name, p, prop(b, off, p)))
    print(" ".join(out))

# pylibfdt's failing lookups drop a reference to None too many (a SWIG
# refcount bug): the interpreter would abort at exit once None's count
# reaches zero. Leave without finalizing.
sys.stdout.flush()
os._exit(0)
