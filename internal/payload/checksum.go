package payload

import "hash/crc32"

// Checksum is the CRC-32 (IEEE) of b, the checksum every payload header
// and every memfd's content report. Go computes it by carry-less multiply
// folding (PCLMULQDQ, VPCLMULQDQ where the CPU has it), faster than a
// copy of the same bytes; its CRC32C has no such path and fell to 38-88%
// of a copy on the machines measured (README: "Payload verification beside
// memcpy").
func Checksum(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// Update is Checksum of what crc covered followed by b.
func Update(crc uint32, b []byte) uint32 { return crc32.Update(crc, crc32.IEEETable, b) }
