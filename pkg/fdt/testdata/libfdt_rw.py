# Builds a tree with libfdt's sequential-write API in a fixed buffer, then
# edits it in place with the read-write API, for the Go tests of Editor.
# stdin: JSON {"capacity": n, "root": node, "sessions": [[op]]},
#   node = {"name": s, "props": [[name, hexvalue]], "children": [node]},
#   op = ["add", parentpath, name] | ["set", path, name, hexvalue]
#      | ["del", path] | ["inplace", path, name, hexvalue] (the kernel's
#      fdt_getprop_w and a write of the same length; fdt_setprop of a value
#      of the same length moves nothing and writes the same bytes).
# Each session is fdt_open_into(buf, buf, capacity), its ops, fdt_pack, as
# the kernel's kho_add_subtree and kho_remove_subtree do.
# stdout: the whole buffer in hex, or "ERR session op errname" at the first
# failing call.
import json
import sys

import libfdt
from libfdt_sw import build_in


class Failed(Exception):
    pass


def check(ret):
    if isinstance(ret, int) and ret < 0:
        raise Failed(libfdt.fdt_strerror(ret))
    return ret


spec = json.load(sys.stdin)
capacity = spec["capacity"]
buf = bytearray(capacity)
build_in(buf, spec, check)

for si, session in enumerate(spec["sessions"]):
    check(libfdt.fdt_open_into(buf, buf, capacity))
    for oi, op in enumerate(session):
        try:
            off = check(libfdt.fdt_path_offset(buf, op[1]))
            if op[0] == "add":
                check(libfdt.fdt_add_subnode(buf, off, op[2]))
            elif op[0] == "set":
                v = bytes.fromhex(op[3])
                check(libfdt.fdt_setprop(buf, off, op[2], v, len(v)))
            elif op[0] == "del":
                check(libfdt.fdt_del_node(buf, off))
            elif op[0] == "inplace":
                v = bytes.fromhex(op[3])
                old = libfdt.fdt_getprop(buf, off, op[2])
                if isinstance(old, int) or len(old[0]) != len(v):
                    raise Failed("in-place value of another length")
                check(libfdt.fdt_setprop(buf, off, op[2], v, len(v)))
            else:
                raise SystemExit("unknown op %r" % op)
        except Failed as e:
            print("ERR %d %d %s" % (si, oi, e))
            sys.exit(0)
    check(libfdt.fdt_pack(buf))
print(buf.hex())
