# Builds a blob with libfdt's sequential-write API for the Go tests.
# stdin: JSON {"capacity": n, "reserved": [[addr, size]], "root": node},
#   node = {"name": s, "props": [[name, hexvalue]], "children": [node]}.
# stdout: the blob (totalsize bytes) in hex, or "NOSPACE".
# capacity 0 uses libfdt.FdtSw (growing buffer); otherwise fdt_create(buf, capacity).
import json
import sys

import libfdt


def with_fdtsw(spec):
    sw = libfdt.FdtSw()
    for addr, size in spec["reserved"]:
        sw.add_reservemap_entry(addr, size)
    sw.finish_reservemap()

    def walk(node):
        sw.begin_node(node["name"])
        for name, value in node["props"]:
            sw.property(name, bytes.fromhex(value))
        for child in node["children"]:
            walk(child)
        sw.end_node()

    walk(spec["root"])
    fdt = sw.as_fdt()
    return bytes(fdt.as_bytearray()[: fdt.totalsize()])


class NoSpace(Exception):
    pass


def build_in(buf, spec, check):
    """fdt_create(buf, len(buf)) up to fdt_finish, checking each call."""
    check(libfdt.fdt_create(buf, len(buf)))
    for addr, size in spec.get("reserved", []):
        check(libfdt.fdt_add_reservemap_entry(buf, addr, size))
    check(libfdt.fdt_finish_reservemap(buf))

    def walk(node):
        check(libfdt.fdt_begin_node(buf, node["name"]))
        for name, value in node["props"]:
            v = bytes.fromhex(value)
            check(libfdt.fdt_property_stub(buf, name, v, len(v)))
        for child in node["children"]:
            walk(child)
        check(libfdt.fdt_end_node(buf))

    walk(spec["root"])
    check(libfdt.fdt_finish(buf))


def with_capacity(spec, capacity):
    buf = bytearray(capacity)

    def check(err):
        if err == -libfdt.NOSPACE:
            raise NoSpace()
        if err:
            raise SystemExit("libfdt error %d" % err)

    build_in(buf, spec, check)
    total = int.from_bytes(buf[4:8], "big")
    return bytes(buf[:total])


def main():
    spec = json.load(sys.stdin)
    try:
        if spec["capacity"]:
            blob = with_capacity(spec, spec["capacity"])
        else:
            blob = with_fdtsw(spec)
    except NoSpace:
        print("NOSPACE")
    else:
        print(blob.hex())


if __name__ == "__main__":
    main()
