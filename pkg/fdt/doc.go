// Package fdt writes and reads flattened device trees (DTSpec v0.4, format
// version 17, last compatible version 16).
//
// Builder reproduces libfdt's sequential-write API (fdt_create,
// fdt_finish_reservemap, fdt_begin_node, fdt_property, fdt_end_node,
// fdt_finish) byte for byte, so a blob built here is laid out exactly as the
// kernel's own FDT writer would lay it out; FinishInto also leaves the
// buffer as fdt_finish leaves it. Editor reproduces libfdt's read-write
// API (fdt_open_into, fdt_add_subnode, fdt_setprop, fdt_del_node,
// fdt_pack) on a fixed buffer, stale bytes included, as the kernel edits
// its KHO root FDT in place. Parse is a strict reader for
// untrusted blobs: every offset, size, token and name is checked against the
// blob before use, work is bounded by depth and count limits, and the returned
// Tree copies all data out of the blob.
//
// The package is written by hand rather than on u-root's pkg/dt because
// pkg/dt orders and deduplicates its strings block differently from libfdt
// (so its output is not byte-identical), its integer helpers are big-endian
// while KHO properties are native-endian, and its reader does not defend
// against hostile input.
//
// Property integers written by PropertyU64 and PropertyU32 are little-endian,
// not big-endian cells: KHO and LUO store raw native-endian values
// (fdt_property(fdt, name, &val, sizeof(val))) and this simulator models
// x86-64.
package fdt
