package kho

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kho-sim/kho-sim/pkg/physmem"
)

func TestPageStoreBytes(t *testing.T) {
	s := NewPageStore()
	a := bytes.Repeat([]byte{0xaa}, physmem.PageSize)
	b := bytes.Repeat([]byte{0xbb}, 10) // zero-padded to a page
	if err := s.Add(0x1000, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(0x2000, b); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pa, n    uint64
		want     []byte
		wantErr  error
		aliasing bool
	}{
		{"within a page", 0x1ff0, 16, bytes.Repeat([]byte{0xaa}, 16), nil, true},
		{"across pages", 0x1ffe, 4, []byte{0xaa, 0xaa, 0xbb, 0xbb}, nil, false},
		{"padding is zero", 0x200a, 2, []byte{0, 0}, nil, true},
		{"empty read", 0x5000, 0, []byte{}, nil, false},
		{"missing page", 0x3000, 1, nil, ErrUnavailable, false},
		{"runs into a missing page", 0x2fff, 2, nil, ErrUnavailable, false},
		{"overflow", ^uint64(0) - 1, 4, nil, ErrUnavailable, false},
		{"too large", 0x1000, maxRead + 1, nil, ErrUnavailable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Bytes(tt.pa, tt.n)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Bytes(%#x, %d): %v, want %v", tt.pa, tt.n, err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("Bytes(%#x, %d) = %x, want %x", tt.pa, tt.n, got, tt.want)
			}
			if tt.aliasing {
				got[0] ^= 0xff
				again, _ := s.Bytes(tt.pa, 1)
				if again[0] != got[0] {
					t.Error("a read within one page does not alias the store")
				}
				got[0] ^= 0xff
				if cap(got) != len(got) {
					t.Errorf("capacity %d beyond the %d bytes asked", cap(got), len(got))
				}
			}
		})
	}
}

func TestPageStoreAdd(t *testing.T) {
	s := NewPageStore()
	for _, tt := range []struct {
		pa   uint64
		page []byte
		want error
	}{
		{0x1001, nil, ErrBadAddress},
		{MaxPhysAddr, nil, ErrBadAddress},
		{0x1000, make([]byte, physmem.PageSize+1), ErrBadSize},
	} {
		if err := s.Add(tt.pa, tt.page); !errors.Is(err, tt.want) {
			t.Errorf("Add(%#x, %d bytes): %v, want %v", tt.pa, len(tt.page), err, tt.want)
		}
	}
	src := []byte{1, 2, 3}
	if err := s.Add(0, src); err != nil {
		t.Fatal(err)
	}
	src[0] = 9
	c := s.Clone()
	c.Page(0)[1] = 9
	if p := s.Page(0); p[0] != 1 || p[1] != 2 || len(p) != physmem.PageSize {
		t.Errorf("store changed through the caller's slice or a clone: %x", p[:4])
	}
	if got := s.Addresses(); len(got) != 1 || got[0] != 0 {
		t.Errorf("Addresses() = %#x", got)
	}
}

// The incoming side reads regions and captured dumps alike.
var (
	_ Memory = (*physmem.Region)(nil)
	_ Memory = (*PageStore)(nil)
)
