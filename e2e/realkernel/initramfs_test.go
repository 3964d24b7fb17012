package realkernel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/u-root/u-root/pkg/cpio"
)

// nextKernelRecord is where initramfs/build.sh puts the kernel kho-sim run
// kexecs into.
const nextKernelRecord = "kernels/next"

// khoSimInitramfs builds kho-sim's u-root initramfs once per test (for the
// first kernel that asks) and gives every lane a copy whose next kernel
// is its own: the lanes' initramfs differ only there, and a u-root build
// costs about a minute and a half of both CPUs.
type khoSimInitramfs struct {
	once sync.Once
	path string
}

// khoSimInitramfs returns an initramfs whose /kernels/next is k's bzImage.
// The shared one lives in the top-level test's directory, which outlives
// every lane.
func (h *harness) khoSimInitramfs(k realKernel) string {
	b := h.initramfs
	b.once.Do(func() {
		path := filepath.Join(h.rootTmp, "kho-sim-"+k.series+".cpio")
		h.run("initramfs/build.sh", "bash", filepath.Join(h.repo, "initramfs/build.sh"), path, k.bzImage)
		b.path = path
	})
	if b.path == "" {
		h.t.Fatal("the kho-sim initramfs was not built (see the lane that built it)")
	}
	out := filepath.Join(h.tmp, "kho-sim.cpio")
	if err := retargetInitramfs(b.path, out, k.bzImage); err != nil {
		h.t.Fatal(err)
	}
	return out
}

var errNoNextKernel = errors.New("no " + nextKernelRecord + " in the initramfs")

// retargetInitramfs copies the newc archive src to dst with the content
// of its kernels/next record replaced by the file kernel; every other
// record, and the order, stay.
func retargetInitramfs(src, dst, kernel string) error {
	in, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("retarget initramfs: %w", err)
	}
	next, err := os.ReadFile(kernel)
	if err != nil {
		return fmt.Errorf("retarget initramfs: %w", err)
	}
	rr := cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(in))}
	var recs []cpio.Record
	found := false
	for {
		r, err := rr.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("retarget initramfs %s: %w", src, err)
		}
		if r.Name == nextKernelRecord {
			r, found = cpio.StaticRecord(next, r.Info), true
		}
		recs = append(recs, r)
	}
	if !found {
		return fmt.Errorf("retarget initramfs %s: %w", src, errNoNextKernel)
	}
	var out bytes.Buffer
	w := cpio.Newc.Writer(&out)
	if err := cpio.WriteRecords(w, recs); err != nil {
		return fmt.Errorf("retarget initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return fmt.Errorf("retarget initramfs: %w", err)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("retarget initramfs: %w", err)
	}
	return nil
}

// addToInitramfs copies the newc archive src to dst with files added (name
// in the archive: path on the host), each an executable regular file.
func addToInitramfs(src, dst string, files map[string]string) error {
	in, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("add to initramfs: %w", err)
	}
	recs, err := cpio.ReadAllRecords(cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(in))})
	if err != nil {
		return fmt.Errorf("add to initramfs %s: %w", src, err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data, err := os.ReadFile(files[name])
		if err != nil {
			return fmt.Errorf("add to initramfs: %w", err)
		}
		recs = append(recs, cpio.StaticFile(name, string(data), 0o755))
	}
	var out bytes.Buffer
	w := cpio.Newc.Writer(&out)
	if err := cpio.WriteRecords(w, recs); err != nil {
		return fmt.Errorf("add to initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return fmt.Errorf("add to initramfs: %w", err)
	}
	return os.WriteFile(dst, out.Bytes(), 0o644)
}
