// Package corrupt damages a kho-sim handover image in place, the way real
// bugs and bit flips would, so that the next boot's checks can be shown to
// catch each kind of damage without panicking.
//
// Every Kind makes one small, described change: a bad FDT magic, a cut
// totalsize, a wrong compatible, a missing luo-flb node, a malformed FLB
// header or entry, a page dropped from the preserved-memory map, a flipped
// payload bit, a looping memory map, a wrong liveupdate-number. Apply locates
// the bytes by reading the image as the next kernel would, with the
// readers that boot uses (kho.ReadIncoming and its memory map, luo.Decode
// for luo_ser and the FLB page, internal/payload for the payload headers) and,
// for the damage an FDT edit makes, an offset walk of the root's, the
// "LUO" and the "kho-sim" FDTs; it writes only through physmem.Region.Bytes, so it never touches
// memory outside the region. Damage that edits an FDT keeps the blob well
// formed unless the kind is about the blob itself (magic, truncation): a
// missing node is NOP-ed out token by token, a short property is followed by
// an FDT_NOP, as a real FDT editor would leave them.
//
// The image may be of any generation kho-sim writes. A kind finds its
// target the way that generation's kernel would (luo_ser behind luo-v2's
// luo-abi-header or as 7.2's raw blob, 7.2's radix tree instead of bitmap
// chunks); a kind whose target the generation lacks (the 7.0 LUO FDT's
// nodes on a 7.2 image, a chunk list in a radix tree) returns
// ErrNotApplicable and changes nothing.
package corrupt
