package ktap

// SetNext makes the next result number n. A test run that spans several
// kernels (one per kexec) prints its top-level results from a fresh Writer
// in each boot; each boot resumes the numbering where the previous stopped.
func (w *Writer) SetNext(n int) {
	if n >= 1 {
		w.next = n - 1
	}
}
