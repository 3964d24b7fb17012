// Package inspect decodes a Kexec HandOver image as Linux 7.0 lays it out
// (the KHO root FDT, every subsystem FDT, the LUO FDT with its FLB page and
// session and file blocks, kho-sim's own metadata and the preserved-memory
// map) and renders it as text or JSON, with every problem it finds.
//
// Decode treats the memory as untrusted, as pkg/kho does: every address,
// count, offset and string is checked before use, nothing panics, and
// beyond the root FDT (whose address comes from the command line) it reads
// only pages that the previous kernel's preserved-memory map lists, through
// kho.Incoming.Map; a structure in unpreserved memory is a finding. It goes
// on past each problem wherever the rest does not depend on it, and says
// beside each finding what a real 7.0 kernel does about it, in pkg/sim's
// wording. A kernel's own handover (no "kho-sim" child) is decoded the same
// way; the missing metadata is a note, not a finding.
//
// # JSON document (schema 1)
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
//	  "schema": 1,
//	  "region": {"start": "0x10000000", "size": 16777216},
//	  "root_pa": "0x10000000",                  where the root FDT was looked for
//	  "kho": {                                  null: no FDT at root_pa
//	    "pa": "0x...", "size": 4096,            size: the header's totalsize
//	    "compatible": "kho-v1",
//	    "preserved_memory_map": "0x...",        first chunk of the memory map
//	    "dts": "/dts-v1/;\n..."                 as dtc -I dtb -O dts prints it
//	  },
//	  "subtrees": [                             children of the root, blob order
//	    {"name": "LUO", "fdt_pa": "0x...", "size": 4096,
//	     "compatible": "luo-v1", "dts": "..."}  size 0 and "" when not read
//	  ],
//	  "luo": {                                  null: no readable "LUO" subtree
//	    "compatible": "luo-v1", "liveupdate_number": 1,
//	    "session_header_pa": "0x...", "flb_header_pa": "0x...",
//	    "flb": {                                null: FLB page not mapped
//	      "pa": "0x...", "pgcnt": 1, "count": 2,   count as the header claims
//	      "entries": [{"index": 0, "name": "...", "name_terminated": true,
//	                   "data": "0x...", "count": 2}]   first min(count, 63)
//	    },
//	    "sessions": {                           null: session block not mapped
//	      "pa": "0x...", "count": 1,
//	      "sessions": [{"index": 0, "name": "...", "name_terminated": true,
//	                    "files_pa": "0x...", "count": 1,
//	                    "files": [{"index": 0, "compatible": "...",
//	                               "compatible_terminated": true,
//	                               "data": "0x...", "token": "0x1"}]}]
//	    }
//	  },
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
//	    "blocks": 12, "bytes": 110592,
//	    "ranges": [{"start": "0x...", "end": "0x...",   end is exclusive
//	                "size": 16384, "pages": 4}]         adjacent blocks merged
//	  },
//	  "notes": ["..."],                         absent things that are not wrong
//	  "findings": [{"where": "FLB table",
//	                "what": "FLB header count 64 above LUO_FLB_MAX 63",
//	                "kernel": "the 7.0 kernel reads past the FLB page"}]
//	}
//
// "kernel" is "" when a 7.0 kernel would not notice, or when the finding
// concerns kho-sim's own metadata or payloads. An empty "findings" means
// the handover is valid.
package inspect
