// Package inspect decodes a Kexec HandOver image of any generation kho-sim
// knows and renders it as text or JSON, with every problem it finds:
//
//   - 7.0: KHO "kho-v1" (bitmap chunks, children with "fdt"), the LUO FDT
//     "luo-v1" with its luo-session and luo-flb nodes, one session block
//     and a file block per session;
//   - luo-v2: KHO "kho-v1", the LUO FDT "luo-v2" whose luo-abi-header
//     points at struct luo_ser {liveupdate_num, sessions_pa, flbs_pa}, then
//     7.0's blocks;
//   - 7.2: KHO "kho-v4" (a radix-tree memory map, children with
//     "blob-size" and "preserved-data"), the raw 32-byte "luo-v5" luo_ser
//     blob, linked page-sized session and file blocks, and the
//     "kexec-metadata" child.
//
// The FLB page is the same in all. Decode recognises the generation from
// the root's compatible and the LUO child's (luo.Detect),
// and also shows every other child FDT, kho-sim's own metadata and the
// preserved-memory map as page ranges.
//
// Decode treats the memory as untrusted, as pkg/kho does: every address,
// count, offset and string is checked before use, nothing panics, and
// beyond the root FDT and the memory map (whose radix nodes are not
// preserved) it reads only pages that the previous kernel's
// preserved-memory map lists, through kho.Incoming.Map; a structure in
// unpreserved memory is a finding. The region must therefore cover every
// block the map lists: a real kernel preserves pages all over its memory.
// Decode goes on past each problem wherever the rest does not depend on
// it, and says beside each finding what a real kernel of the handover's
// generation does about it (pkg/kernel's words, the same the simulator
// and the guest reader use). The LUO state is read by pkg/luo's Decode,
// which also holds a 7.2 handover to what a real 7.2 kernel's always
// satisfies (one preserved block per structure, no page used twice, ...). A kernel's own
// handover (no "kho-sim" child) is decoded the same way; the missing
// metadata is a note, not a finding.
//
// Memory read from a running kernel is not always what was handed over:
// after boot the next kernel frees the LUO blob and the radix nodes and
// may reuse them, and KHO's debugfs copies can be truncated or stale. Such
// damage shows as findings.
//
// # JSON document (schema 2)
//
// WriteJSON prints one object. Field names are snake_case and stable: a
// field is never renamed or removed without a new "schema" number, and new
// fields may appear. 64-bit addresses, data words, tokens, seeds and CRCs
// are strings "0x..." (lower-case hex, so that readers whose numbers are
// doubles lose nothing); counts and sizes are JSON numbers. Names are the
// bytes up to the first NUL (invalid UTF-8 becomes U+FFFD). Lists are
// always arrays, possibly empty, never null; an object that could not be
// read is null.
//
//	{
//	  "schema": 2,
//	  "region": {"start": "0x10000000", "size": 16777216},
//	  "root_pa": "0x10000000",                  where the root FDT was looked for
//	  "generation": {                           null: no FDT at root_pa
//	    "name": "7.2",                          "7.0", "luo-v2", "7.2"; "" unknown
//	    "kho": "kho-v4", "luo": "luo-v5"},      the compatibles it is named by
//	  "kho": {                                  null: no FDT at root_pa
//	    "pa": "0x...", "size": 4096,            size: the header's totalsize
//	    "compatible": "kho-v4",
//	    "preserved_memory_map": "0x...",        first chunk, or radix root table
//	    "dts": "/dts-v1/;\n..."                 as dtc -I dtb -O dts prints it
//	  },
//	  "subtrees": [                             children of the root, blob order
//	    {"name": "LUO", "pa": "0x...",          "fdt" or "preserved-data"
//	     "blob_size": 32,                       kho-v4's blob-size, 0 in kho-v1
//	     "kind": "blob",                        "fdt", "blob"; "" when not read
//	     "size": 32,                            bytes read (FDT: its totalsize)
//	     "compatible": "", "dts": "",           an FDT's
//	     "hex": "6c756f2d..."}                  a blob's first 256 bytes at most
//	  ],
//	  "luo": {                                  null: no readable "LUO" subtree
//	    "compatible": "luo-v5",                 the FDT's, or luo_ser's in 7.2
//	    "liveupdate_number": 1,
//	    "luo_ser": {"pa": "0x...", "size": 32}, null in luo-v1
//	    "sessions_pa": "0x...",                 luo-session-header or sessions_pa
//	    "flbs_pa": "0x...",                     luo-flb-header or flbs_pa
//	    "flb": {                                null: no FLB page, or not mapped
//	      "pa": "0x...", "pgcnt": 1, "count": 2,   count as the header claims
//	      "entries": [{"index": 0, "name": "...", "name_terminated": true,
//	                   "data": "0x...", "count": 2}]   first min(count, 63)
//	    },
//	    "sessions": {                           null: none, or not mapped
//	      "pa": "0x...", "count": 1,            count: summed over the blocks
//	      "blocks": [{"pa": "0x...", "count": 1}],   one, or a 7.2 chain
//	      "sessions": [{"index": 0, "name": "...", "name_terminated": true,
//	                    "files_pa": "0x...", "count": 1,
//	                    "file_blocks": [{"pa": "0x...", "count": 1}],
//	                    "files": [{"index": 0, "compatible": "...",
//	                               "compatible_terminated": true,
//	                               "data": "0x...", "token": "0x1",
//	                               "memfd": {"size": 12388, "pos": 0,   memfd-v2 files only;
//	                                         "seals": 1, "folios": 4,   absent when unreadable
//	                                         "holes": 0, "crc": "0x..."}}]}]   crc: CRC-32 of the content
//	    }
//	  },
//	  "kexec_metadata": {                       null: none (kho-v1) or unreadable
//	    "pa": "0x...", "size": 73, "version": 1,
//	    "previous_release": "7.2.13", "kexec_count": 1},
//	  "kho_sim": {                              null: no (readable) "kho-sim" child
//	    "scenario": "default", "boot": 1, "boots": 3, "luo_number": 1,
//	    "fix": false,
//	    "passed": 0, "failed": 0, "skipped": 0, "tsc_hz": 0,
//	    "flbs": [{"name": "...", "data": "0x...", "count": 2, "size": 4096,
//	              "seed": "0x...", "crc": "0x...", "payload_ok": true}],
//	    "files": [{"session": "...", "token": "0x1", "handler": "...",
//	               "data": "0x...", "size": 4096, "seed": "0x...",
//	               "crc": "0x...", "payload_ok": true}]
//	  },
//	  "preserved_memory": {                     null: memory map unreadable
//	    "encoding": "radix",                    "bitmaps" (kho-v1) or "radix"
//	    "blocks": 12, "bytes": 110592,
//	    "ranges": [{"start": "0x...", "end": "0x...",   end is exclusive
//	                "size": 16384, "pages": 4}]         adjacent blocks merged
//	  },
//	  "notes": ["..."],                         absent things that are not wrong
//	  "findings": [{"where": "FLB table",
//	                "what": "FLB header count 64 above LUO_FLB_MAX 63",
//	                "kernel": "the 7.2 kernel reads past the FLB page"}]
//	}
//
// "kernel" is "" when the kernel would not notice, or when the finding
// concerns kho-sim's own metadata or payloads. An empty "findings" means
// the handover is valid.
//
// Schema 1 (7.0 only) differs: no "generation", "kexec_metadata",
// "luo_ser", "blocks", "file_blocks", "encoding", "blob_size", "kind" and
// "hex"; subtrees' "pa" was "fdt_pa", luo's "sessions_pa" and "flbs_pa"
// were "session_header_pa" and "flb_header_pa", and "kernel" always spoke
// of 7.0.
package inspect
