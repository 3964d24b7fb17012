// Package corrupt damages a kho-sim handover image in place, the way real
// bugs and bit flips would, so that the next boot's checks can be shown to
// catch each kind of damage without panicking.
//
// Every Kind makes one small, described change: a bad FDT magic, a cut
// totalsize, a wrong compatible, a missing luo-flb node, a malformed FLB
// header or entry, a page dropped from the preserved-memory map, a flipped
// payload bit, a looping memory map, a wrong liveupdate-number. Apply locates
// the bytes by reading the image as the next kernel would (KHO root FDT, its
// "LUO" and "kho-sim" subtrees, the FLB page, the memory map, the payload
// headers) and writes only through physmem.Region.Bytes, so it never touches
// memory outside the region. Damage that edits an FDT keeps the blob well
// formed unless the kind is about the blob itself (magic, truncation): a
// missing node is NOP-ed out token by token, a short property is followed by
// an FDT_NOP, as a real FDT editor would leave them.
package corrupt
