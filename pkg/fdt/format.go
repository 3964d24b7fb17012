package fdt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Format writes t as device tree source, byte for byte as `dtc -I dtb -O dts`
// (dtc 1.6.1, Debian 12) prints it: values that look like strings as strings
// (a stringlist as one string with \0 escapes), other multiples of 4 bytes as
// <cells>, the rest as [bytes].
func Format(w io.Writer, t *Tree) error {
	if t == nil || t.Root == nil {
		return errors.New("fdt: format: tree has no root")
	}
	var buf bytes.Buffer
	buf.WriteString("/dts-v1/;\n\n")
	for _, r := range t.Reserved {
		fmt.Fprintf(&buf, "/memreserve/\t0x%016x 0x%016x;\n", r.Address, r.Size)
	}
	formatNode(&buf, t.Root, 0)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("fdt: format: %w", err)
	}
	return nil
}

func formatNode(buf *bytes.Buffer, n *Node, level int) {
	indent := func(l int) {
		for range l {
			buf.WriteByte('\t')
		}
	}
	indent(level)
	if n.Name == "" {
		buf.WriteString("/ {\n")
	} else {
		buf.WriteString(n.Name + " {\n")
	}
	for _, p := range n.Props {
		indent(level + 1)
		buf.WriteString(p.Name)
		formatValue(buf, p.Value)
	}
	for _, c := range n.Children {
		buf.WriteByte('\n')
		formatNode(buf, c, level+1)
	}
	indent(level)
	buf.WriteString("};\n")
}

// dtsEscape returns the escape letter of a control character dtc treats as
// string content, or 0.
func dtsEscape(c byte) byte {
	if i := bytes.IndexByte([]byte("\a\b\t\n\v\f\r"), c); c != 0 && i >= 0 {
		return "abtnvfr"[i]
	}
	return 0
}

// formatValue follows dtc's guess_value_type and write_propval_*.
func formatValue(buf *bytes.Buffer, v []byte) {
	if len(v) == 0 {
		buf.WriteString(";\n")
		return
	}
	nul, notString := 0, 0
	for _, c := range v {
		switch {
		case c == 0:
			nul++
		case (c < 0x20 || c > 0x7e) && dtsEscape(c) == 0:
			notString++
		}
	}
	switch {
	case v[len(v)-1] == 0 && notString == 0 && nul <= len(v)-nul:
		buf.WriteString(` = "`)
		for _, c := range v[:len(v)-1] {
			switch {
			case c == 0:
				buf.WriteString(`\0`)
			case c == '\\' || c == '"':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case dtsEscape(c) != 0:
				buf.WriteByte('\\')
				buf.WriteByte(dtsEscape(c))
			default:
				buf.WriteByte(c)
			}
		}
		buf.WriteString("\";\n")
	case len(v)%4 == 0:
		buf.WriteString(" = <")
		for i := 0; i < len(v); i += 4 {
			if i > 0 {
				buf.WriteByte(' ')
			}
			fmt.Fprintf(buf, "0x%02x", uint32(v[i])<<24|uint32(v[i+1])<<16|uint32(v[i+2])<<8|uint32(v[i+3]))
		}
		buf.WriteString(">;\n")
	default:
		buf.WriteString(" = [")
		for i, c := range v {
			if i > 0 {
				buf.WriteByte(' ')
			}
			fmt.Fprintf(buf, "%02x", c)
		}
		buf.WriteString("];\n")
	}
}
